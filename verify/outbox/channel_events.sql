-- Verify whatsapp_handler:outbox/channel_events on pg
BEGIN;

SELECT whatsapp_handler._assert_function('whatsapp_handler._emit_channel_event(text, bigint, jsonb)', '{}');

ROLLBACK;
