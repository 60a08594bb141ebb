-- Verify whatsapp_handler:jobs/late_jobs on pg
BEGIN;

SELECT whatsapp_handler._assert_function('whatsapp_handler.cron_job_lateness()', '{whatsapp_handler_relay}');
SELECT whatsapp_handler._assert_function('whatsapp_handler._cron_period(text)', '{}');
SELECT whatsapp_handler._assert_function('whatsapp_handler._cron_field(text, integer, integer, text[])', '{}');
-- The runs are read as the jobs' login, which owns this one function; only the owner calls it.
SELECT 1 / count(*) FROM pg_proc
WHERE oid = 'whatsapp_handler._cron_job_last_runs()'::regprocedure AND proowner = 'whatsapp_handler_cron'::regrole
  AND prosecdef AND proconfig @> ARRAY['search_path=pg_catalog, whatsapp_handler, pg_temp']
  AND obj_description(oid, 'pg_proc') IS NOT NULL
  AND NOT has_function_privilege('public', oid, 'execute')
  AND has_function_privilege('whatsapp_handler_owner', oid, 'execute');
-- The trigger belongs to a superuser, as the table does.
SELECT 1 / count(*) FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_roles r ON r.oid = p.proowner
WHERE p.oid = 'whatsapp_handler._job_scheduled_at()'::regprocedure AND r.rolsuper
  AND p.proconfig @> ARRAY['search_path=pg_catalog, whatsapp_handler, pg_temp']
  AND NOT has_function_privilege('public', p.oid, 'execute');
SELECT 1 / count(*) FROM pg_catalog.pg_trigger
WHERE tgrelid = 'whatsapp_handler.jobs'::regclass AND tgname = 'jobs_scheduled_at' AND tgenabled <> 'D';
SELECT scheduled_at FROM whatsapp_handler.jobs WHERE false;
-- The period of the schedules the plan ships.
SELECT 1 / (whatsapp_handler._cron_period('*/10 * * * *') = interval '10 minutes'
            AND whatsapp_handler._cron_period('17 3 * * *') = interval '1 day'
            AND whatsapp_handler._cron_period('@reboot') IS NULL)::int;
SELECT job_name, schedule, period_seconds, last_run_at, scheduled_at, age_seconds, overdue
FROM whatsapp_handler.cron_job_lateness() WHERE false;

ROLLBACK;
