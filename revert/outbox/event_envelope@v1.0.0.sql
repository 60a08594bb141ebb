-- Revert whatsapp_handler:outbox/event_envelope from pg
BEGIN;

DROP FUNCTION whatsapp_handler._emit_event(text, bigint, jsonb);
DROP FUNCTION whatsapp_handler._event_group(bigint);
DROP FUNCTION whatsapp_handler._event_envelope(text, bigint, jsonb, text);

COMMIT;
