-- Revert whatsapp_handler:ingest/success_rate from pg
-- The counts are recounted from webhook_events after the next deploy (the day 25 hours back
-- onwards); the job's row is kept for core/restore_kept, in case a DBA changed it.
BEGIN;
\ir ../kept.sql

WITH gone AS (DELETE FROM whatsapp_handler.jobs WHERE name = 'webhook_minutes' RETURNING *)
SELECT whatsapp_handler_kept.keep('job', jsonb_agg(to_jsonb(gone))) FROM gone;

SET LOCAL ROLE whatsapp_handler_owner;
DROP VIEW analytics.webhook_success_daily;
DROP FUNCTION whatsapp_handler.webhook_success_rate();
DROP FUNCTION whatsapp_handler.job_webhook_minutes();
DROP TABLE whatsapp_handler.analytics_webhooks_daily;
DROP TABLE whatsapp_handler.webhook_minute_marks;
DROP TABLE whatsapp_handler.webhook_minutes;

COMMIT;
