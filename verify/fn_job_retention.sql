-- Verify whatsapp_handler:fn_job_retention on pg
BEGIN;

SELECT whatsapp_handler._assert_function('whatsapp_handler.job_retention()', '{}');
SELECT 1 / count(*) FROM pg_catalog.pg_proc WHERE oid = 'whatsapp_handler.job_retention()'::regprocedure AND prosecdef;
SELECT whatsapp_handler._assert_function('whatsapp_handler.job_trim_cron_history()', '{}');
SELECT 1 / count(*) FROM pg_catalog.pg_index
WHERE indexrelid = 'whatsapp_handler.message_keys_message_created_at_brin'::regclass
  AND indrelid = 'whatsapp_handler.message_keys'::regclass;

ROLLBACK;
