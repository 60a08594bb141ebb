-- Verify whatsapp_handler:jobs/redrive_inbound on pg
BEGIN;

SELECT whatsapp_handler._assert_function('whatsapp_handler.redrive_inbound(integer, bigint[])', '{}');
SELECT 1 / count(*) FROM pg_catalog.pg_proc
WHERE oid = 'whatsapp_handler.redrive_inbound(integer, bigint[])'::regprocedure AND prosecdef;

ROLLBACK;
