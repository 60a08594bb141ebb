-- Revert whatsapp_handler:jobs/jobs from pg
-- Deleting the rows unschedules their cron jobs (the trigger), and only those: other
-- jobs in cron.job are left alone.
BEGIN;
\ir ../kept.sql

WITH gone AS (DELETE FROM whatsapp_handler.jobs RETURNING *)
SELECT whatsapp_handler_kept.keep('job', jsonb_agg(to_jsonb(gone))) FROM gone;
DROP TABLE whatsapp_handler.jobs;
DROP FUNCTION whatsapp_handler._sync_cron_job();
REVOKE EXECUTE ON FUNCTION whatsapp_handler.job_partitions(), whatsapp_handler.job_retention(),
    whatsapp_handler.job_trim_cron_history(), whatsapp_handler.job_erase_inactive_users(integer),
    whatsapp_handler.redrive_inbound(integer, bigint[]), whatsapp_handler.redrive_outbound(integer, bigint[])
    FROM whatsapp_handler_cron;
REVOKE USAGE ON SCHEMA whatsapp_handler FROM whatsapp_handler_cron;

COMMIT;
