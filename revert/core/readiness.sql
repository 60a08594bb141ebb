-- Revert whatsapp_handler:core/readiness from pg
-- Puts back the functions as v1.0.0 released them (deploy/core/readiness@v1.0.0.sql).
BEGIN;
SET LOCAL ROLE whatsapp_handler_owner;

DROP FUNCTION whatsapp_handler.readiness(text, timestamptz);

CREATE OR REPLACE FUNCTION whatsapp_handler.readiness(p_change text)
RETURNS jsonb
LANGUAGE sql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
    SELECT jsonb_build_object(
        'plan', EXISTS (SELECT FROM sqitch.changes WHERE project = 'whatsapp_handler' AND change = p_change),
        'pg_cron', EXISTS (SELECT FROM pg_stat_activity WHERE backend_type = 'pg_cron launcher'))
$$;
REVOKE ALL ON FUNCTION whatsapp_handler.readiness(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION whatsapp_handler.readiness(text) TO whatsapp_handler_relay, whatsapp_handler_worker;
COMMENT ON FUNCTION whatsapp_handler.readiness(text) IS
    'For /ready: {"plan": whether sqitch change p_change of this project is deployed, "pg_cron": whether the pg_cron launcher runs}. Raises nothing.';

CREATE OR REPLACE FUNCTION whatsapp_handler.queue_metrics()
RETURNS TABLE (queue_name text, depth bigint, oldest_age_seconds double precision)
LANGUAGE plpgsql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
DECLARE
    v_queue text;
BEGIN
    -- Only this project's queues: the ones whose tables the owner owns.
    FOR v_queue IN
        SELECT m.queue_name FROM pgmq.meta m
        WHERE (SELECT relowner FROM pg_class WHERE oid = to_regclass('pgmq.' || quote_ident('q_' || m.queue_name)))
              = 'whatsapp_handler_owner'::regrole
        ORDER BY m.queue_name
    LOOP
        RETURN QUERY SELECT v_queue, x.queue_length, x.oldest_msg_age_sec::double precision FROM pgmq.metrics(v_queue) x;
    END LOOP;
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler.queue_metrics() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION whatsapp_handler.queue_metrics() TO whatsapp_handler_relay, whatsapp_handler_worker;
COMMENT ON FUNCTION whatsapp_handler.queue_metrics() IS
    'For /metrics: depth and age in seconds of the oldest message (NULL when empty) of each pgmq queue of this project. Raises nothing.';

COMMIT;
