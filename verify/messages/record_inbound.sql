-- Verify whatsapp_handler:messages/record_inbound on pg
BEGIN;

SELECT whatsapp_handler._assert_function('whatsapp_handler._record_inbound(bigint, text, text, text, text, text, jsonb, text, bigint)', '{}');
SELECT whatsapp_handler._assert_function('whatsapp_handler._tally(jsonb, text)', '{}');
SELECT whatsapp_handler._assert_function('whatsapp_handler._message_received(bigint, bigint, bigint, text, text, text, jsonb, text)', '{}');

ROLLBACK;
