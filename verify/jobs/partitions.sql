-- Verify whatsapp_handler:jobs/partitions on pg
BEGIN;

SELECT whatsapp_handler._assert_function('whatsapp_handler.job_partitions()', '{}');
SELECT 1 / count(*) FROM pg_catalog.pg_proc
WHERE oid = 'whatsapp_handler.job_partitions()'::regprocedure AND prosecdef;

ROLLBACK;
