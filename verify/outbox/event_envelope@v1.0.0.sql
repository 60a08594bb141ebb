-- Verify whatsapp_handler:outbox/event_envelope on pg
BEGIN;

SELECT whatsapp_handler._assert_function('whatsapp_handler._emit_event(text, bigint, jsonb)', '{}');
SELECT whatsapp_handler._assert_function('whatsapp_handler._event_envelope(text, bigint, jsonb, text)', '{}');
SELECT whatsapp_handler._assert_function('whatsapp_handler._event_group(bigint)', '{}');
SELECT 1 / (whatsapp_handler._event_group(7) = 'user:7')::int;

ROLLBACK;
