-- Verify whatsapp_handler:messages/queue_reply on pg
BEGIN;

SELECT whatsapp_handler._assert_function('whatsapp_handler._queue_reply(bigint, text, text)', '{}');

ROLLBACK;
