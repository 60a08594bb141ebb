-- Verify whatsapp_handler:jobs/redrive_inbound on pg
BEGIN;

SELECT whatsapp_handler._assert_function('whatsapp_handler.redrive_inbound(integer, bigint[])', '{}');
SELECT 1 / count(*) FROM pg_catalog.pg_proc
WHERE oid = 'whatsapp_handler.redrive_inbound(integer, bigint[])'::regprocedure AND prosecdef;
-- The version reworked after v1.0.0 keeps its report in the dead-letter history.
SELECT 1 / count(*) FROM pg_catalog.pg_proc
WHERE oid = 'whatsapp_handler.redrive_inbound(integer, bigint[])'::regprocedure AND prosrc LIKE '%_dead_letter_log(%';

ROLLBACK;
