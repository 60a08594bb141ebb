-- Verify whatsapp_handler:jobs/erase_inactive_users on pg
BEGIN;

SELECT whatsapp_handler._assert_function('whatsapp_handler.job_erase_inactive_users(integer)', '{}');
SELECT 1 / count(*) FROM pg_catalog.pg_proc
WHERE oid = 'whatsapp_handler.job_erase_inactive_users(integer)'::regprocedure AND prosecdef;

ROLLBACK;
