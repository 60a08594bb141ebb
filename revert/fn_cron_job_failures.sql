-- Revert whatsapp_handler:fn_cron_job_failures from pg
BEGIN;

DROP FUNCTION whatsapp_handler.cron_job_failures();
DROP FUNCTION whatsapp_handler._cron_job_runs();

COMMIT;
