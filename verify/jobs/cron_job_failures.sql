-- Verify whatsapp_handler:jobs/cron_job_failures on pg
BEGIN;

SELECT whatsapp_handler._assert_function('whatsapp_handler.cron_job_failures()', '{whatsapp_handler_relay}');
-- The runs are read as the jobs' login, which owns this one function; only the owner calls it.
SELECT 1 / count(*) FROM pg_proc
WHERE oid = 'whatsapp_handler._cron_job_runs()'::regprocedure AND proowner = 'whatsapp_handler_cron'::regrole
  AND prosecdef AND proconfig @> ARRAY['search_path=pg_catalog, whatsapp_handler, pg_temp']
  AND obj_description(oid, 'pg_proc') IS NOT NULL
  AND NOT has_function_privilege('public', oid, 'execute')
  AND has_function_privilege('whatsapp_handler_owner', oid, 'execute');
SELECT job_name, scheduled, failures, last_message FROM whatsapp_handler.cron_job_failures() WHERE false;

ROLLBACK;
