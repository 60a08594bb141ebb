-- Verify whatsapp_handler:sending/message_view on pg
BEGIN;

SELECT whatsapp_handler._assert_function('whatsapp_handler._message_delivery(bigint, bigint)', '{}');
SELECT whatsapp_handler._assert_function('whatsapp_handler.message_view(bytea, bigint)', '{whatsapp_handler_relay}');

ROLLBACK;
