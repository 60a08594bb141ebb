-- Verify whatsapp_handler:ingest/success_rate on pg
BEGIN;

SELECT whatsapp_handler._assert_function('whatsapp_handler.webhook_success_rate()', '{whatsapp_handler_relay}');
SELECT whatsapp_handler._assert_function('whatsapp_handler.job_webhook_minutes()', '{whatsapp_handler_cron}');
SELECT span, provider, channel_id, webhooks, failed, success_ratio, counted_to
FROM whatsapp_handler.webhook_success_rate() WHERE false;
SELECT day, provider, channel_id, webhooks, failed, success_ratio FROM analytics.webhook_success_daily WHERE false;
SELECT whatsapp_handler._assert_analytics_view('analytics.webhook_success_daily');
SELECT 1 / count(*) FROM pg_catalog.pg_class
WHERE oid = 'whatsapp_handler.analytics_webhooks_daily'::regclass AND relrowsecurity AND relforcerowsecurity;
-- A job of whatsapp_handler.jobs (jobs/jobs' verify checks that cron.job follows).
SELECT 1 / count(*) FROM whatsapp_handler.jobs WHERE name = 'webhook_minutes' AND function = 'job_webhook_minutes';
-- Nothing on ingestion's path: no trigger on webhook_events.
SELECT 1 / (count(*) = 0)::int FROM pg_catalog.pg_trigger
WHERE tgrelid = 'whatsapp_handler.webhook_events'::regclass AND NOT tgisinternal;

ROLLBACK;
