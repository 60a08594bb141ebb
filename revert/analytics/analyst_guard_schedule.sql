-- Revert whatsapp_handler:analytics/analyst_guard_schedule from pg
-- Deleting the row unschedules its cron job (the jobs trigger).
BEGIN;
\ir ../kept.sql

WITH gone AS (DELETE FROM whatsapp_handler.jobs WHERE name = 'analyst_guard' RETURNING *)
SELECT whatsapp_handler_kept.keep('job', jsonb_agg(to_jsonb(gone))) FROM gone;
REVOKE EXECUTE ON FUNCTION whatsapp_handler.job_analyst_guard() FROM whatsapp_handler_cron;

COMMIT;
