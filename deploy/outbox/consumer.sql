-- Deploy whatsapp_handler:outbox/consumer to pg
-- Reworked after v1.0.0: outbox_dlq_replay leaves a replay row of the dead-letter history
-- (queue/dead_letter_history) naming the login, the letters it put back and those it did not
-- find, and outbox_read checks outbox.max_reads (a whole number from 1 to 1000, WH020). Only
-- these two changed: the rest is as deploy/outbox/consumer@v1.0.0.sql made it.
-- requires: queue/dead_letter_history jobs/settings
BEGIN;
SET LOCAL ROLE whatsapp_handler_owner;

CREATE OR REPLACE FUNCTION whatsapp_handler.outbox_read(p_qty integer DEFAULT 10, p_vt_seconds integer DEFAULT 30)
RETURNS TABLE (msg_id bigint, read_ct integer, enqueued_at timestamptz, message jsonb)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    -- Checked (jobs/settings): a value that was not a whole number stopped every read with a
    -- cast error, and 0 would have moved every waiting event aside.
    v_max_reads integer := _setting_integer('outbox.max_reads', 1, 1000);
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
    'Reads up to p_qty domain events from pgmq queue outbox for p_vt_seconds: at most one per user (the oldest, and only when it is visible), so each user''s events are handled in order; first moves events read outbox.max_reads times without an acknowledgement to outbox_dlq. Returns (msg_id, read_ct, enqueued_at, message). Raises WH014 for p_qty outside 1-1000 or p_vt_seconds outside 1-43200, WH011 when the setting is missing, WH020 when outbox.max_reads is not a whole number from 1 to 1000.';

-- Operators (`whatsapp-handler dlq replay outbox`): the events go back on the outbox as
-- they were, each at the end of its user's line; consumers read them afresh. The letters are
-- locked first, so that the history names exactly those that went back.
CREATE OR REPLACE FUNCTION whatsapp_handler.outbox_dlq_replay(p_msg_ids bigint[])
RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
DECLARE
    v_ids     bigint[];
    v_results jsonb;
    v_count   integer;
BEGIN
    SELECT coalesce(array_agg(l.msg_id ORDER BY l.msg_id), '{}'),
           coalesce(jsonb_agg(jsonb_build_object('msg_id', l.msg_id, 'result', 'replayed', 'channel_id', l.channel_id)
                              ORDER BY l.msg_id), '[]')
    INTO v_ids, v_results
    FROM _lock_dead_letters('outbox_dlq', p_msg_ids) l;
    v_count := _replay_outbox_letters(v_ids);
    PERFORM _dead_letter_log('replay', 'outbox_dlq', 'outbox_dlq_replay', jsonb_build_object(
        'replayed', v_count,
        'not_found', to_jsonb(ARRAY(SELECT DISTINCT i FROM unnest(p_msg_ids) i WHERE i <> ALL (v_ids) ORDER BY i)),
        'results', v_results));
    RETURN v_count;
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler.outbox_dlq_replay(bigint[]) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler.outbox_dlq_replay(bigint[]) IS
    'Operators: puts the events of these outbox_dlq letters back on the outbox (read count starting afresh) and deletes the letters, and writes a replay row of the dead-letter history naming the login, the letters put back and those named but not found. Returns how many went back. Raises nothing.';

COMMIT;
