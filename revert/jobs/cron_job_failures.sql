-- Revert whatsapp_handler:jobs/cron_job_failures from pg
BEGIN;

DROP FUNCTION whatsapp_handler.cron_job_failures();
DROP FUNCTION whatsapp_handler._cron_job_runs();

COMMIT;
