-- Deploy whatsapp_handler:queue/dead_letters to pg
-- requires: queue/rights queue/outbox queue/outbound core/roles
-- A dead-letter queue per consumer (inbound_dlq, for webhooks, is its own change):
-- outbox_dlq takes events that consumers read too often without acknowledging them,
-- outbound_dlq takes messages the worker could not deliver. docs/queues.md has their
-- formats; `whatsapp-handler dlq` lists, shows, replays and purges them.
BEGIN;

DO $$
BEGIN
    PERFORM pgmq.create('outbox_dlq');
    PERFORM pgmq.create('outbound_dlq');
END
$$;
ALTER TABLE pgmq.q_outbox_dlq OWNER TO whatsapp_handler_owner;
ALTER TABLE pgmq.a_outbox_dlq OWNER TO whatsapp_handler_owner;
ALTER TABLE pgmq.q_outbound_dlq OWNER TO whatsapp_handler_owner;
ALTER TABLE pgmq.a_outbound_dlq OWNER TO whatsapp_handler_owner;
COMMENT ON TABLE pgmq.q_outbox_dlq IS 'whatsapp-handler outbox events read more than the allowed number of times without being acknowledged: {event, read_ct, dead_lettered_at}.';
COMMENT ON TABLE pgmq.q_outbound_dlq IS 'whatsapp-handler outbound messages the worker could not deliver: {message, reason, error, attempts, dead_lettered_at}; OTP messages lose their code on the way.';

-- Every right on the queue's tables and sequence goes but the owner's (queue/rights).
SELECT format('REVOKE ALL ON %s %s FROM %s', kind, relation, grantee)
FROM whatsapp_handler._queue_rights_beyond_owner(ARRAY['outbox_dlq', 'outbound_dlq']) \gexec

-- The worker's one way into outbound_dlq (worker_dead_letter): a static INSERT, where
-- pgmq.send's dynamic SQL is planned on every call.
SET LOCAL ROLE whatsapp_handler_owner;

CREATE FUNCTION whatsapp_handler._dead_letter_outbound(p_letter jsonb, p_headers jsonb)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
DECLARE
    v_msg_id bigint;
BEGIN
    INSERT INTO pgmq.q_outbound_dlq (vt, message, headers)
    VALUES (clock_timestamp(), p_letter, p_headers)
    RETURNING msg_id INTO v_msg_id;
    RETURN v_msg_id;
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler._dead_letter_outbound(jsonb, jsonb) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler._dead_letter_outbound(jsonb, jsonb) IS
    'Internal: queues one outbound dead letter ({message, reason, error, attempts, redrives, queue_msg_id, dead_lettered_at}) with these headers (its x-pgmq-group), visible at once; returns its msg_id. Raises nothing.';

-- The outbox's readers' way into outbox_dlq (outbox_read), set-based: one statement for
-- every event that is due.
CREATE FUNCTION whatsapp_handler._dead_letter_outbox(p_max_reads integer)
RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
DECLARE
    v_count integer;
BEGIN
    -- Visible again after p_max_reads reads: every reader that took it failed. Moved aside
    -- with its headers, so that its user is known.
    WITH poisoned AS (
        DELETE FROM pgmq.q_outbox q
        WHERE q.msg_id IN (SELECT p.msg_id FROM pgmq.q_outbox p
                           WHERE p.read_ct >= p_max_reads AND p.vt <= clock_timestamp()
                           FOR UPDATE SKIP LOCKED)
        RETURNING q.msg_id, q.read_ct, q.message, q.headers
    )
    INSERT INTO pgmq.q_outbox_dlq (vt, message, headers)
    SELECT clock_timestamp(),
           jsonb_build_object('event', p.message, 'read_ct', p.read_ct, 'queue_msg_id', p.msg_id,
                              'dead_lettered_at', clock_timestamp()),
           p.headers
    FROM poisoned p;
    GET DIAGNOSTICS v_count = ROW_COUNT;
    RETURN v_count;
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler._dead_letter_outbox(integer) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler._dead_letter_outbox(integer) IS
    'Internal: moves every visible outbox event read p_max_reads times or more (locked ones skipped) to outbox_dlq as {event, read_ct, queue_msg_id, dead_lettered_at} with its headers; returns how many. Raises nothing.';

-- The way back (outbox_dlq_replay): each event at the end of its group's line, in the
-- order the letters were written, its read count starting afresh.
CREATE FUNCTION whatsapp_handler._replay_outbox_letters(p_msg_ids bigint[])
RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
DECLARE
    v_count integer;
BEGIN
    WITH dead AS (
        DELETE FROM pgmq.q_outbox_dlq WHERE msg_id = ANY (p_msg_ids) RETURNING msg_id, message, headers
    )
    INSERT INTO pgmq.q_outbox (vt, message, headers)
    SELECT clock_timestamp(), message -> 'event', headers FROM dead ORDER BY msg_id;
    GET DIAGNOSTICS v_count = ROW_COUNT;
    RETURN v_count;
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler._replay_outbox_letters(bigint[]) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler._replay_outbox_letters(bigint[]) IS
    'Internal: puts the events of these outbox_dlq letters back on the outbox with their headers, visible at once, and deletes the letters; returns how many went back. Raises nothing.';

COMMIT;
