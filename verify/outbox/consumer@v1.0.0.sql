-- Verify whatsapp_handler:outbox/consumer on pg
BEGIN;

SELECT whatsapp_handler._assert_function('whatsapp_handler.outbox_read(integer, integer)', '{whatsapp_handler_consumer}');
SELECT whatsapp_handler._assert_function('whatsapp_handler.outbox_ack(bigint[])', '{whatsapp_handler_consumer}');
SELECT whatsapp_handler._assert_function('whatsapp_handler.outbox_nack(bigint, integer)', '{whatsapp_handler_consumer}');
SELECT whatsapp_handler._assert_function('whatsapp_handler.outbox_dlq_replay(bigint[])', '{}');
SELECT 1 / count(*) FROM whatsapp_handler.settings WHERE key = 'outbox.max_reads';

ROLLBACK;
