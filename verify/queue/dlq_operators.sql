-- Verify whatsapp_handler:queue/dlq_operators on pg
BEGIN;

-- The operators' login is the deploying one: no service role may call these.
SELECT whatsapp_handler._assert_function('whatsapp_handler._dlq_name(text)', '{}');
SELECT whatsapp_handler._assert_function('whatsapp_handler.dlq_counts()', '{}');
SELECT whatsapp_handler._assert_function('whatsapp_handler.dlq_letters(text, integer, bigint)', '{}');
SELECT whatsapp_handler._assert_function('whatsapp_handler.dlq_purge(text, bigint[])', '{}');
-- The version reworked after v1.0.0 writes the dead-letter history.
SELECT 1 / count(*) FROM pg_catalog.pg_proc
WHERE oid = 'whatsapp_handler.dlq_purge(text, bigint[])'::regprocedure AND prosrc LIKE '%_dead_letter_log(%';

ROLLBACK;
