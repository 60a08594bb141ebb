-- Revert whatsapp_handler:analytics/refresh_schedule from pg
-- Deleting the row unschedules its cron job (the jobs trigger).
BEGIN;
\ir ../kept.sql

WITH gone AS (DELETE FROM whatsapp_handler.jobs WHERE name = 'analytics_refresh' RETURNING *)
SELECT whatsapp_handler_kept.keep('job', jsonb_agg(to_jsonb(gone))) FROM gone;
REVOKE EXECUTE ON FUNCTION whatsapp_handler.job_analytics_refresh(timestamptz) FROM whatsapp_handler_cron;

COMMIT;
