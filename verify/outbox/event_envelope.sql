-- Verify whatsapp_handler:outbox/event_envelope on pg
BEGIN;

SELECT 1 / (NOT has_function_privilege('public', 'whatsapp_handler._emit_event(text, bigint, jsonb)', 'execute'))::int;
SELECT 1 / (NOT has_function_privilege('whatsapp_handler_relay', 'whatsapp_handler._emit_event(text, bigint, jsonb)', 'execute'))::int;

ROLLBACK;
