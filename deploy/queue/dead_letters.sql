-- Deploy whatsapp_handler:queue/dead_letters to pg
-- Reworked after v1.0.0: _dead_letter_outbox finds the events every reader failed through a
-- partial index of the events read before (q_outbox_reread_idx), where it read the whole
-- outbox at every outbox_read: 33 ms a read with 500,000 events waiting, 130 ms with two
-- million, so consumers back from an outage drained their backlog slower the bigger it was
-- (bench/RESULTS.md, "Outbox backlog"). This is the whole change as it is now, CREATE OR
-- REPLACE over the released function (deploy/queue/dead_letters@v1.0.0.sql runs first).
-- requires: queue/rights queue/outbox queue/outbound core/roles
BEGIN;

-- As the deployer: an index needs CREATE on schema pgmq, which the owner role lacks. An
-- event enters it at its first read, an update that writes new entries in every index anyway
-- (vt changes, so it is never a HOT update); an event queued and not read yet costs nothing.
-- It holds what is read and not acknowledged: the events in flight and those visible again.
CREATE INDEX q_outbox_reread_idx ON pgmq.q_outbox (vt) WHERE read_ct >= 1;
SET LOCAL ROLE whatsapp_handler_owner;

CREATE OR REPLACE FUNCTION whatsapp_handler._dead_letter_outbox(p_max_reads integer)
RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
DECLARE
    -- A value, not clock_timestamp() in the query: a volatile call cannot bound an index scan.
    v_now   timestamptz := clock_timestamp();
    v_count integer;
BEGIN
    -- Visible again after p_max_reads reads: every reader that took it failed. Moved aside
    -- with its headers, so that its user is known.
    WITH poisoned AS (
        DELETE FROM pgmq.q_outbox q
        WHERE q.msg_id IN (SELECT p.msg_id FROM pgmq.q_outbox p
                           -- read_ct >= 1 written out: the partial index's predicate, which
                           -- the planner cannot prove from a parameter. An event never read
                           -- is no reader's failure, whatever outbox.max_reads says.
                           WHERE p.read_ct >= 1 AND p.read_ct >= p_max_reads AND p.vt <= v_now
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
    'Internal: moves every visible outbox event read p_max_reads times or more, and at least once, (locked ones skipped) to outbox_dlq as {event, read_ct, queue_msg_id, dead_lettered_at} with its headers; returns how many. Raises nothing.';

COMMIT;
