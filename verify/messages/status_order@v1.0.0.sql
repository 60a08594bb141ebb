-- Verify whatsapp_handler:messages/status_order on pg
BEGIN;

SELECT whatsapp_handler._assert_function('whatsapp_handler._advance_status(bigint, timestamptz, whatsapp_handler.message_status, timestamptz, text, jsonb, bigint)', '{}');

ROLLBACK;
