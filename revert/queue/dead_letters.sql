-- Revert whatsapp_handler:queue/dead_letters from pg
-- Puts back the function as v1.0.0 released it (deploy/queue/dead_letters@v1.0.0.sql) and
-- drops the index it no longer reads.
BEGIN;

DROP INDEX pgmq.q_outbox_reread_idx;
SET LOCAL ROLE whatsapp_handler_owner;

-- The outbox's readers' way into outbox_dlq (outbox_read), set-based: one statement for
-- every event that is due.
CREATE OR REPLACE FUNCTION whatsapp_handler._dead_letter_outbox(p_max_reads integer)
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

COMMIT;
