-- Verify whatsapp_handler:outbox/consumer on pg
BEGIN;

SELECT whatsapp_handler._assert_function('whatsapp_handler.outbox_read(integer, integer)', '{whatsapp_handler_consumer}');
SELECT whatsapp_handler._assert_function('whatsapp_handler.outbox_ack(bigint[])', '{whatsapp_handler_consumer}');
SELECT whatsapp_handler._assert_function('whatsapp_handler.outbox_nack(bigint, integer)', '{whatsapp_handler_consumer}');
SELECT whatsapp_handler._assert_function('whatsapp_handler.outbox_dlq_replay(bigint[])', '{}');
SELECT 1 / count(*) FROM whatsapp_handler.settings WHERE key = 'outbox.max_reads';
-- The version reworked after v1.0.0 writes the dead-letter history.
SELECT 1 / count(*) FROM pg_catalog.pg_proc
WHERE oid = 'whatsapp_handler.outbox_dlq_replay(bigint[])'::regprocedure AND prosrc LIKE '%_dead_letter_log(%';

ROLLBACK;
