-- Deploy whatsapp_handler:queue/archive to pg
-- requires: queue/outbox queue/outbound core/assert_function
-- A handled message leaves its queue for the queue's archive (a_<queue>, kept for the
-- retention job), as pgmq.archive does, written out once per queue from one template: a
-- static statement is planned once per session, pgmq.archive's dynamic SQL on every call.
-- The archives' retention (_trim_archives) is here too.
BEGIN;
SET LOCAL ROLE whatsapp_handler_owner;

DO $do$
DECLARE
    v_queue text;
BEGIN
    FOREACH v_queue IN ARRAY ARRAY['outbound', 'outbox'] LOOP
        EXECUTE format($template$
CREATE FUNCTION whatsapp_handler._archive_%1$s(p_msg_ids bigint[])
RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $body$
DECLARE
    v_count integer;
BEGIN
    -- in_flight marks a claim being handled: an archived message is handled.
    WITH done AS (DELETE FROM pgmq.q_%1$s WHERE msg_id = ANY (p_msg_ids) RETURNING *)
    INSERT INTO pgmq.a_%1$s (msg_id, vt, read_ct, enqueued_at, last_read_at, message, headers)
    SELECT msg_id, vt, read_ct, enqueued_at, last_read_at, message, headers - 'in_flight' FROM done;
    GET DIAGNOSTICS v_count = ROW_COUNT;
    RETURN v_count;
END
$body$
$template$, v_queue);
        EXECUTE format('REVOKE ALL ON FUNCTION whatsapp_handler._archive_%s(bigint[]) FROM PUBLIC', v_queue);
        EXECUTE format('COMMENT ON FUNCTION whatsapp_handler._archive_%s(bigint[]) IS %L', v_queue,
            format('Internal: moves these messages of pgmq queue %s to its archive a_%s (headers without in_flight); '
                   'returns how many were still queued. Raises nothing.', v_queue, v_queue));
    END LOOP;
END
$do$;

-- pgmq keeps archived messages for ever unless deleted: the retention job trims every
-- queue's archive, a bounded batch per run. Dynamic, once per queue and run; a queue made
-- later in the plan than this change (inbound_dlq) is trimmed once it exists.
CREATE FUNCTION whatsapp_handler._trim_archives(p_before timestamptz, p_limit integer)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
DECLARE
    v_queue  text;
    v_count  bigint;
    v_queues jsonb := '{}';
BEGIN
    FOREACH v_queue IN ARRAY ARRAY['outbox', 'outbound', 'inbound_dlq', 'outbox_dlq', 'outbound_dlq'] LOOP
        v_count := 0;
        IF p_before IS NOT NULL AND to_regclass(format('pgmq.%I', 'a_' || v_queue)) IS NOT NULL THEN
            EXECUTE format('DELETE FROM pgmq.%1$I WHERE msg_id IN (SELECT msg_id FROM pgmq.%1$I WHERE archived_at < $1 ORDER BY archived_at LIMIT $2)',
                           'a_' || v_queue)
            USING p_before, p_limit;
            GET DIAGNOSTICS v_count = ROW_COUNT;
        END IF;
        v_queues := v_queues || jsonb_build_object(v_queue, v_count);
    END LOOP;
    RETURN v_queues;
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler._trim_archives(timestamptz, integer) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler._trim_archives(timestamptz, integer) IS
    'Internal: deletes up to p_limit of the oldest messages archived before p_before from each archive of outbox, outbound, inbound_dlq, outbox_dlq and outbound_dlq (none when p_before is NULL); returns {<queue>: n} for the five. Raises nothing.';

COMMIT;
