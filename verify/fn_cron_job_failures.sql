-- Verify whatsapp_handler:fn_cron_job_failures on pg
-- Not _assert_function: this function is owned by the deploying login (see its deploy script).
BEGIN;

SELECT 1 / count(*) FROM pg_proc
WHERE oid = 'whatsapp_handler.cron_job_failures()'::regprocedure
  AND prosecdef AND proconfig @> ARRAY['search_path=pg_catalog, whatsapp_handler, pg_temp']
  AND obj_description(oid, 'pg_proc') IS NOT NULL
  AND NOT has_function_privilege('public', oid, 'execute')
  AND has_function_privilege('whatsapp_handler_relay', oid, 'execute')
  AND NOT has_function_privilege('whatsapp_handler_worker', oid, 'execute')
  AND NOT has_function_privilege('whatsapp_handler_analyst', oid, 'execute')
  AND NOT has_function_privilege('whatsapp_handler_consumer', oid, 'execute');
SELECT job_name, scheduled, failures, last_message FROM whatsapp_handler.cron_job_failures() WHERE false;

ROLLBACK;
