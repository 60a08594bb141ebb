-- Deploy whatsapp_handler:queue/dlq_operators to pg
-- requires: queue/dead_letters queue/inbound_dlq core/assert_function
-- What `whatsapp-handler dlq` reads and deletes, so that the CLI calls functions like every
-- other caller and the dead-letter queues' layout is known here only. Operators run the
-- CLI with the deploying login (docs/runbook.md): the functions are the owner's, and no
-- service role may call them.
BEGIN;
SET LOCAL ROLE whatsapp_handler_owner;

-- The queue named by an operator, checked once: each function below branches on it to a
-- static statement per queue (no dynamic SQL, so no table name comes from outside).
CREATE FUNCTION whatsapp_handler._dlq_name(p_queue text)
RETURNS text
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
BEGIN
    IF p_queue IS NULL OR p_queue NOT IN ('inbound_dlq', 'outbound_dlq', 'outbox_dlq') THEN
        RAISE EXCEPTION 'unknown dead-letter queue %', coalesce(p_queue, 'NULL') USING ERRCODE = 'WH024',
            HINT = 'The dead-letter queues are inbound_dlq, outbound_dlq and outbox_dlq.';
    END IF;
    RETURN p_queue;
END
$$;

CREATE FUNCTION whatsapp_handler.dlq_counts()
RETURNS TABLE (queue text, letters bigint, oldest timestamptz, parked bigint)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
    SELECT 'inbound_dlq', count(*), min(enqueued_at), count(*) FILTER (WHERE message ->> 'parked' = 'true')
    FROM pgmq.q_inbound_dlq
    UNION ALL
    SELECT 'outbound_dlq', count(*), min(enqueued_at), count(*) FILTER (WHERE message ->> 'parked' = 'true')
    FROM pgmq.q_outbound_dlq
    UNION ALL
    SELECT 'outbox_dlq', count(*), min(enqueued_at), count(*) FILTER (WHERE message ->> 'parked' = 'true')
    FROM pgmq.q_outbox_dlq
$$;

CREATE FUNCTION whatsapp_handler.dlq_letters(p_queue text, p_limit integer DEFAULT NULL, p_msg_id bigint DEFAULT NULL)
RETURNS TABLE (msg_id bigint, read_ct integer, enqueued_at timestamptz, vt timestamptz, message jsonb, headers jsonb)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
#variable_conflict use_column
BEGIN
    IF p_limit < 0 THEN
        RAISE EXCEPTION 'a limit is not negative' USING ERRCODE = 'WH024', HINT = 'Pass a limit of 0 or more, or NULL for all.';
    END IF;
    CASE _dlq_name(p_queue)
    WHEN 'inbound_dlq' THEN
        RETURN QUERY SELECT q.msg_id, q.read_ct, q.enqueued_at, q.vt, q.message, q.headers FROM pgmq.q_inbound_dlq q
        WHERE p_msg_id IS NULL OR q.msg_id = p_msg_id ORDER BY q.msg_id LIMIT p_limit;
    WHEN 'outbound_dlq' THEN
        RETURN QUERY SELECT q.msg_id, q.read_ct, q.enqueued_at, q.vt, q.message, q.headers FROM pgmq.q_outbound_dlq q
        WHERE p_msg_id IS NULL OR q.msg_id = p_msg_id ORDER BY q.msg_id LIMIT p_limit;
    ELSE
        RETURN QUERY SELECT q.msg_id, q.read_ct, q.enqueued_at, q.vt, q.message, q.headers FROM pgmq.q_outbox_dlq q
        WHERE p_msg_id IS NULL OR q.msg_id = p_msg_id ORDER BY q.msg_id LIMIT p_limit;
    END CASE;
END
$$;

CREATE FUNCTION whatsapp_handler.dlq_purge(p_queue text, p_msg_ids bigint[] DEFAULT NULL)
RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
DECLARE
    v_count integer;
BEGIN
    -- NULL purges every letter of the queue; an empty array none.
    CASE _dlq_name(p_queue)
    WHEN 'inbound_dlq' THEN
        DELETE FROM pgmq.q_inbound_dlq WHERE p_msg_ids IS NULL OR msg_id = ANY (p_msg_ids);
    WHEN 'outbound_dlq' THEN
        DELETE FROM pgmq.q_outbound_dlq WHERE p_msg_ids IS NULL OR msg_id = ANY (p_msg_ids);
    ELSE
        DELETE FROM pgmq.q_outbox_dlq WHERE p_msg_ids IS NULL OR msg_id = ANY (p_msg_ids);
    END CASE;
    GET DIAGNOSTICS v_count = ROW_COUNT;
    RETURN v_count;
END
$$;

REVOKE ALL ON FUNCTION whatsapp_handler._dlq_name(text), whatsapp_handler.dlq_counts(),
    whatsapp_handler.dlq_letters(text, integer, bigint), whatsapp_handler.dlq_purge(text, bigint[]) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler._dlq_name(text) IS
    'Internal: p_queue when it names a dead-letter queue (inbound_dlq, outbound_dlq, outbox_dlq). Raises WH024 otherwise.';
COMMENT ON FUNCTION whatsapp_handler.dlq_counts() IS
    'Operators (`whatsapp-handler dlq list`): per dead-letter queue, its letters, the oldest one''s enqueue time and how many are parked. Raises nothing.';
COMMENT ON FUNCTION whatsapp_handler.dlq_letters(text, integer, bigint) IS
    'Operators (`whatsapp-handler dlq list QUEUE`, `dlq show`): the letters of one dead-letter queue (msg_id, read_ct, enqueued_at, vt, message, headers), oldest first, at most p_limit (NULL: all), only p_msg_id when given. Raises WH024 for an unknown queue or a negative limit.';
COMMENT ON FUNCTION whatsapp_handler.dlq_purge(text, bigint[]) IS
    'Operators (`whatsapp-handler dlq purge`): deletes these letters of one dead-letter queue for good (NULL: all of them). Returns how many were deleted. Raises WH024 for an unknown queue.';

COMMIT;
