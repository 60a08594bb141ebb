-- Revert whatsapp_handler:jobs/late_jobs from pg
-- scheduled_at is derived (when a job was enabled or rescheduled): nothing a DBA set is lost.
BEGIN;

DROP FUNCTION whatsapp_handler.cron_job_lateness();
DROP FUNCTION whatsapp_handler._cron_period(text);
DROP FUNCTION whatsapp_handler._cron_field(text, integer, integer, text[]);
DROP FUNCTION whatsapp_handler._cron_job_last_runs();
DROP TRIGGER jobs_scheduled_at ON whatsapp_handler.jobs;
DROP FUNCTION whatsapp_handler._job_scheduled_at();
ALTER TABLE whatsapp_handler.jobs DROP COLUMN scheduled_at;

COMMIT;
