-- Revert whatsapp_handler:queue/outbox from pg
-- Puts back the functions as v1.0.0 released them (deploy/queue/outbox@v1.0.0.sql).
BEGIN;
-- The queue's one writer: pgmq.send's dynamic SQL is planned on every call, this static
-- INSERT once per session. Triggers pgmq adds to the table (enable_notify_insert) still fire.
SET LOCAL ROLE whatsapp_handler_owner;

CREATE OR REPLACE FUNCTION whatsapp_handler._enqueue_outbox(p_messages jsonb[], p_groups text[])
RETURNS SETOF bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
BEGIN
    -- One row per element, in array order: ids follow the order, so a group's events are
    -- read in the order they were queued.
    RETURN QUERY
    INSERT INTO pgmq.q_outbox (vt, message, headers)
    SELECT clock_timestamp(), m.message, jsonb_build_object('x-pgmq-group', m.grp)
    FROM unnest(p_messages, p_groups) WITH ORDINALITY AS m(message, grp, i)
    ORDER BY m.i
    RETURNING msg_id;
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler._enqueue_outbox(jsonb[], text[]) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler._enqueue_outbox(jsonb[], text[]) IS
    'Internal: queues one outbox message per element of p_messages, with header x-pgmq-group p_groups[i], visible at once, in array order; returns the msg_ids in that order. Raises nothing.';

-- A consumer gives an event back (outbox_nack): it stays the head of its group.
CREATE OR REPLACE FUNCTION whatsapp_handler._delay_outbox(p_msg_id bigint, p_delay_seconds integer)
RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
BEGIN
    UPDATE pgmq.q_outbox SET vt = clock_timestamp() + make_interval(secs => p_delay_seconds) WHERE msg_id = p_msg_id;
    RETURN FOUND;
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler._delay_outbox(bigint, integer) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler._delay_outbox(bigint, integer) IS
    'Internal: makes an outbox event visible again after p_delay_seconds; returns false when it is gone. Raises nothing.';

COMMIT;
