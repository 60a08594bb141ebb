-- Revert whatsapp_handler:table_jobs from pg
-- Deleting the rows unschedules their cron jobs (the trigger), and only those: other
-- jobs in cron.job are left alone.
BEGIN;

DELETE FROM whatsapp_handler.jobs;
DROP TABLE whatsapp_handler.jobs;
DROP FUNCTION whatsapp_handler._sync_cron_job();

COMMIT;
