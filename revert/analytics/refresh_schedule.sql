-- Revert whatsapp_handler:analytics/refresh_schedule from pg
-- Deleting the row unschedules its cron job (the jobs trigger).
BEGIN;

DELETE FROM whatsapp_handler.jobs WHERE name = 'analytics_refresh';
REVOKE EXECUTE ON FUNCTION whatsapp_handler.job_analytics_refresh(timestamptz) FROM whatsapp_handler_cron;

COMMIT;
