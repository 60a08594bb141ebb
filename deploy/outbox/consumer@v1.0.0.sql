-- Deploy whatsapp_handler:outbox/consumer to pg
-- requires: queue/outbox queue/heads queue/archive queue/dead_letters core/settings core/roles
-- The outbox contract for the business's services (docs/queues.md): read with a
-- visibility timeout, one event per user at a time and in order; acknowledge when done
-- (archived); an event read more than outbox.max_reads times without an acknowledgement
-- goes to outbox_dlq instead of blocking its user's later events for ever.
BEGIN;

SET LOCAL ROLE whatsapp_handler_owner;

INSERT INTO whatsapp_handler.settings (key, value, description) VALUES
    ('outbox.max_reads', '5', 'Reads of an outbox event without an acknowledgement before it moves to outbox_dlq.');

CREATE FUNCTION whatsapp_handler.outbox_read(p_qty integer DEFAULT 10, p_vt_seconds integer DEFAULT 30)
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

CREATE FUNCTION whatsapp_handler.outbox_ack(p_msg_ids bigint[])
RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
BEGIN
    RETURN _archive_outbox(p_msg_ids);
END
$$;

CREATE FUNCTION whatsapp_handler.outbox_nack(p_msg_id bigint, p_delay_seconds integer DEFAULT 0)
RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
BEGIN
    IF p_delay_seconds IS NULL OR p_delay_seconds NOT BETWEEN 0 AND 43200 THEN
        RAISE EXCEPTION 'a delay is 0 to 43200 seconds' USING ERRCODE = 'WH014',
            HINT = 'Pass the seconds after which the event is to be read again.';
    END IF;
    RETURN _delay_outbox(p_msg_id, p_delay_seconds);
END
$$;

-- Operators (`whatsapp-handler dlq replay outbox`): the events go back on the outbox as
-- they were, each at the end of its user's line; consumers read them afresh.
CREATE FUNCTION whatsapp_handler.outbox_dlq_replay(p_msg_ids bigint[])
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

REVOKE ALL ON FUNCTION whatsapp_handler.outbox_read(integer, integer), whatsapp_handler.outbox_ack(bigint[]),
    whatsapp_handler.outbox_nack(bigint, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION whatsapp_handler.outbox_read(integer, integer), whatsapp_handler.outbox_ack(bigint[]),
    whatsapp_handler.outbox_nack(bigint, integer) TO whatsapp_handler_consumer;
COMMENT ON FUNCTION whatsapp_handler.outbox_read(integer, integer) IS
    'Reads up to p_qty domain events from pgmq queue outbox for p_vt_seconds: at most one per user (the oldest, and only when it is visible), so each user''s events are handled in order; first moves events read outbox.max_reads times without an acknowledgement to outbox_dlq. Returns (msg_id, read_ct, enqueued_at, message). Raises WH014 for p_qty outside 1-1000 or p_vt_seconds outside 1-43200, WH011 when the setting is missing.';
COMMENT ON FUNCTION whatsapp_handler.outbox_ack(bigint[]) IS
    'Acknowledges handled outbox events: archives them (kept 7 days). Returns how many were still there. Raises nothing.';
COMMENT ON FUNCTION whatsapp_handler.outbox_nack(bigint, integer) IS
    'Gives an event back to be read again after p_delay_seconds (0: at once). Returns false when it is gone. Raises WH014 for a delay outside 0-43200.';

COMMIT;
