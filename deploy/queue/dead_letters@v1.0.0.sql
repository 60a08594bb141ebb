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

-- The outbound re-drive (jobs/redrive_outbound) takes back what failed because a provider
-- was down, with backoff: never an OTP message (its code is gone), never a parked letter.
-- An operator names letters whatever their state. Locked for the caller's transaction.
CREATE FUNCTION whatsapp_handler._outbound_letters_due(p_limit integer, p_msg_ids bigint[], p_backoff interval, p_backoff_max interval)
RETURNS TABLE (msg_id bigint, message jsonb, headers jsonb, redrives integer)
LANGUAGE plpgsql
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    SELECT q.msg_id, q.message, q.headers, d.redrives
    FROM pgmq.q_outbound_dlq q
    CROSS JOIN LATERAL (SELECT CASE WHEN jsonb_typeof(q.message -> 'redrives') = 'number'
                                    THEN least((q.message ->> 'redrives')::numeric, 1000000)::integer ELSE 0 END AS redrives) d
    WHERE CASE WHEN p_msg_ids IS NULL
               THEN q.message ->> 'reason' = 'provider_down'
                    AND q.message #>> '{message,kind}' IS DISTINCT FROM 'otp'
                    AND q.message -> 'parked' IS DISTINCT FROM 'true'::jsonb
                    -- Backoff: the dead letter must be base x 2^redrives old (at most the cap).
                    AND q.enqueued_at + least(p_backoff * power(2, least(d.redrives, 30)), p_backoff_max) <= clock_timestamp()
               ELSE q.msg_id = ANY (p_msg_ids) END
    ORDER BY q.msg_id
    LIMIT CASE WHEN p_msg_ids IS NULL THEN p_limit END
    FOR UPDATE OF q SKIP LOCKED;
END
$$;

-- Parked: kept for a person, skipped by the re-drive.
CREATE FUNCTION whatsapp_handler._park_outbound_letter(p_msg_id bigint)
RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
BEGIN
    UPDATE pgmq.q_outbound_dlq
    SET message = message || jsonb_build_object('parked', true, 'parked_at', clock_timestamp())
    WHERE msg_id = p_msg_id;
    RETURN FOUND;
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler._outbound_letters_due(integer, bigint[], interval, interval),
    whatsapp_handler._park_outbound_letter(bigint) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler._outbound_letters_due(integer, bigint[], interval, interval) IS
    'Internal: locks and returns (msg_id, message, headers, redrives) of the outbound dead letters to re-drive, oldest first, skipping locked ones: without p_msg_ids up to p_limit letters of reason provider_down, not OTP, not parked, at least p_backoff x 2^redrives old (at most p_backoff_max); with p_msg_ids exactly those. Raises nothing.';
COMMENT ON FUNCTION whatsapp_handler._park_outbound_letter(bigint) IS
    'Internal: marks an outbound dead letter parked (parked, parked_at); returns false when it is gone. Raises nothing.';

COMMIT;
