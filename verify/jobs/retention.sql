-- Verify whatsapp_handler:jobs/retention on pg
BEGIN;

SELECT whatsapp_handler._assert_function('whatsapp_handler.job_retention()', '{}');
SELECT 1 / count(*) FROM pg_catalog.pg_proc WHERE oid = 'whatsapp_handler.job_retention()'::regprocedure AND prosecdef;
-- The version reworked after v1.0.0 trims the send API's idempotency keys and the dead-letter history too.
SELECT 1 / count(*) FROM pg_catalog.pg_proc
WHERE oid = 'whatsapp_handler.job_retention()'::regprocedure AND prosrc LIKE '%send_requests%';
SELECT 1 / count(*) FROM pg_catalog.pg_proc
WHERE oid = 'whatsapp_handler.job_retention()'::regprocedure AND prosrc LIKE '%dead_letter_history%';
SELECT whatsapp_handler._assert_function('whatsapp_handler.job_trim_cron_history()', '{}');
SELECT 1 / count(*) FROM pg_catalog.pg_proc WHERE oid = 'whatsapp_handler.job_trim_cron_history()'::regprocedure AND prosecdef;
-- The delete runs as the jobs' login, which owns it; only the owner's functions call it.
SELECT 1 / count(*) FROM pg_catalog.pg_proc
WHERE oid = 'whatsapp_handler._trim_cron_history(timestamptz)'::regprocedure
  AND prosecdef AND proowner = 'whatsapp_handler_cron'::regrole
  AND proconfig @> ARRAY['search_path=pg_catalog, whatsapp_handler, pg_temp']
  AND NOT has_function_privilege('public', oid, 'execute')
  AND has_function_privilege('whatsapp_handler_owner', oid, 'execute');
SELECT 1 / (has_schema_privilege('whatsapp_handler_cron', 'cron', 'usage'))::int;
SELECT 1 / count(*) FROM pg_catalog.pg_index
WHERE indexrelid = 'whatsapp_handler.message_keys_message_created_at_brin'::regclass
  AND indrelid = 'whatsapp_handler.message_keys'::regclass;

ROLLBACK;
