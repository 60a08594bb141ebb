-- Deploy whatsapp_handler:campaigns/metrics to pg
-- requires: campaigns/campaigns core/roles
-- The campaigns as /metrics shows them: each live campaign's state and the funnel of its
-- recipients by state and reason, read by the worker every few seconds (like its pacing
-- counters) and exported by each worker process alike.
BEGIN;
SET LOCAL ROLE whatsapp_handler_owner;

CREATE FUNCTION whatsapp_handler.worker_campaign_metrics()
RETURNS TABLE (campaign_id bigint, channel_id bigint, state text, state_reason text,
               recipient_state text, recipient_reason text, recipients bigint)
LANGUAGE sql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
    SELECT c.id, c.channel_id, c.state, coalesce(c.state_reason, ''), r.state, coalesce(r.reason, ''), count(*)
    FROM campaigns c JOIN campaign_recipients r ON r.campaign_id = c.id
    WHERE c.state NOT IN ('completed', 'cancelled') OR c.state_changed_at > now() - interval '1 day'
    GROUP BY c.id, c.channel_id, c.state, c.state_reason, r.state, r.reason
    ORDER BY c.id, r.state, coalesce(r.reason, '')
$$;
REVOKE ALL ON FUNCTION whatsapp_handler.worker_campaign_metrics() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION whatsapp_handler.worker_campaign_metrics() TO whatsapp_handler_worker;
COMMENT ON FUNCTION whatsapp_handler.worker_campaign_metrics() IS
    'For /metrics: each campaign not yet completed or cancelled, or that became so within a day, with its state and reason (empty for none) and its recipients counted by state and reason (empty for none). Raises nothing.';

COMMIT;
