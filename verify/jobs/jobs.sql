-- Verify whatsapp_handler:jobs/jobs on pg
BEGIN;

SELECT name, function, schedule, enabled, description, cron_job_name, command FROM whatsapp_handler.jobs WHERE FALSE;
-- The table and its trigger belong to a superuser (never to the owner, whose members could
-- redefine what a superuser runs); the owner reads the rows and changes none.
SELECT 1 / count(*) FROM pg_catalog.pg_class c JOIN pg_catalog.pg_roles r ON r.oid = c.relowner
WHERE c.oid = 'whatsapp_handler.jobs'::regclass AND r.rolsuper
  AND has_table_privilege('whatsapp_handler_owner', c.oid, 'SELECT')
  AND NOT has_table_privilege('whatsapp_handler_owner', c.oid, 'INSERT, UPDATE, DELETE, TRUNCATE, TRIGGER');
SELECT 1 / count(*) FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_roles r ON r.oid = p.proowner
WHERE p.oid = 'whatsapp_handler._sync_cron_job()'::regprocedure AND r.rolsuper
  AND p.proconfig @> ARRAY['search_path=pg_catalog, whatsapp_handler, pg_temp']
  AND NOT has_function_privilege('public', p.oid, 'execute');
SELECT 1 / count(*) FROM pg_catalog.pg_trigger
WHERE tgrelid = 'whatsapp_handler.jobs'::regclass AND tgname = 'jobs_sync_cron_job' AND tgenabled <> 'D';
-- Every enabled job is in cron.job, with its schedule and command, run as the jobs' login,
-- which may execute its function (run verify as a superuser: pg_cron shows other roles'
-- jobs to superusers only).
SELECT 1 / (count(*) = 0)::int FROM whatsapp_handler.jobs j
WHERE j.enabled AND NOT EXISTS (SELECT FROM cron.job c WHERE c.jobname = j.cron_job_name
                                AND c.schedule = j.schedule AND c.command = j.command AND c.active
                                AND c.username = 'whatsapp_handler_cron');
SELECT 1 / (count(*) = 0)::int FROM whatsapp_handler.jobs j
WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_proc p WHERE p.pronamespace = 'whatsapp_handler'::regnamespace
                  AND p.proname = j.function AND has_function_privilege('whatsapp_handler_cron', p.oid, 'execute'));
-- No job of the project runs as a superuser.
SELECT 1 / (count(*) = 0)::int FROM cron.job c JOIN pg_catalog.pg_roles r ON r.rolname = c.username
WHERE c.jobname LIKE 'whatsapp\_handler.%' ESCAPE '\' AND r.rolsuper;

ROLLBACK;
