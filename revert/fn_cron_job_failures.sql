-- Revert whatsapp_handler:fn_cron_job_failures from pg
BEGIN;

DROP FUNCTION whatsapp_handler.cron_job_failures();

COMMIT;
