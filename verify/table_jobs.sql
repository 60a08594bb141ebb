-- Verify whatsapp_handler:table_jobs on pg
BEGIN;

SELECT name, function, schedule, enabled, description, cron_job_name, command FROM whatsapp_handler.jobs WHERE FALSE;
SELECT whatsapp_handler._assert_function('whatsapp_handler._sync_cron_job()', '{}');
SELECT 1 / count(*) FROM pg_catalog.pg_trigger
WHERE tgrelid = 'whatsapp_handler.jobs'::regclass AND tgname = 'jobs_sync_cron_job' AND tgenabled <> 'D';
-- Every enabled job is in cron.job, with its schedule and command (as seen by the
-- verifying role: run verify as the role that deployed, or as a superuser).
SELECT 1 / (count(*) = 0)::int FROM whatsapp_handler.jobs j
WHERE j.enabled AND NOT EXISTS (SELECT FROM cron.job c WHERE c.jobname = j.cron_job_name
                                AND c.schedule = j.schedule AND c.command = j.command AND c.active);

ROLLBACK;
