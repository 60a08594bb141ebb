-- Revert whatsapp_handler:outbox/consumer from pg
-- Puts back outbox_read and outbox_dlq_replay as v1.0.0 released them
-- (deploy/outbox/consumer@v1.0.0.sql).
BEGIN;
SET LOCAL ROLE whatsapp_handler_owner;

CREATE OR REPLACE FUNCTION whatsapp_handler.outbox_read(p_qty integer DEFAULT 10, p_vt_seconds integer DEFAULT 30)
RETURNS TABLE (msg_id bigint, read_ct integer, enqueued_at timestamptz, message jsonb)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    v_max_reads integer := (_setting('outbox.max_reads') #>> '{}')::integer;
BEGIN
    IF p_qty IS NULL OR p_qty NOT BETWEEN 1 AND 1000 OR p_vt_seconds IS NULL OR p_vt_seconds NOT BETWEEN 1 AND 43200 THEN
        RAISE EXCEPTION 'read 1 to 1000 events for 1 to 43200 seconds' USING ERRCODE = 'WH014',
            HINT = 'Pass p_qty between 1 and 1000 and p_vt_seconds between 1 and 43200.';
    END IF;
    -- Events every reader failed go aside first (queue/dead_letters), in this transaction.
    PERFORM _dead_letter_outbox(v_max_reads);

    -- Only the head of its user's line (queue/heads, as for outbound).
    RETURN QUERY
    SELECT c.msg_id, c.read_ct, c.enqueued_at, c.message FROM _claim_outbox(p_qty, p_vt_seconds) c;
END
$$;
COMMENT ON FUNCTION whatsapp_handler.outbox_read(integer, integer) IS
    'Reads up to p_qty domain events from pgmq queue outbox for p_vt_seconds: at most one per user (the oldest, and only when it is visible), so each user''s events are handled in order; first moves events read outbox.max_reads times without an acknowledgement to outbox_dlq. Returns (msg_id, read_ct, enqueued_at, message). Raises WH014 for p_qty outside 1-1000 or p_vt_seconds outside 1-43200, WH011 when the setting is missing.';

CREATE OR REPLACE FUNCTION whatsapp_handler.outbox_dlq_replay(p_msg_ids bigint[])
RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
BEGIN
    RETURN _replay_outbox_letters(p_msg_ids);
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler.outbox_dlq_replay(bigint[]) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler.outbox_dlq_replay(bigint[]) IS
    'Operators: puts the events of these outbox_dlq letters back on the outbox (read count starting afresh) and deletes the letters. Returns how many went back. Raises nothing.';

COMMIT;
