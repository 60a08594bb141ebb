-- Verify whatsapp_handler:outbox/event_envelope on pg
BEGIN;

SELECT whatsapp_handler._assert_function('whatsapp_handler._emit_event(text, bigint, jsonb)', '{}');
SELECT whatsapp_handler._assert_function('whatsapp_handler._event_envelope(text, bigint, jsonb, text)', '{}');
SELECT whatsapp_handler._assert_function('whatsapp_handler._event_group(bigint)', '{}');
SELECT 1 / (whatsapp_handler._event_group(7) = 'user:7')::int;
SELECT whatsapp_handler._assert_function('whatsapp_handler._event_envelope(text, text, bigint, jsonb, text)', '{}');
SELECT whatsapp_handler._assert_function('whatsapp_handler._emit_channel_event(text, bigint, jsonb)', '{}');
-- A user's envelope is the one envelope's, about a user.
SELECT 1 / (whatsapp_handler._event_envelope('a.b', 7::bigint, NULL, NULL) ->> 'aggregate_type' = 'user')::int;

ROLLBACK;
