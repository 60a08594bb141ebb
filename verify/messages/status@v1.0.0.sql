-- Verify whatsapp_handler:messages/status on pg
BEGIN;

SELECT whatsapp_handler._assert_function('whatsapp_handler._record_status(bigint, text, text, timestamptz, jsonb, bigint)', '{}');

ROLLBACK;
