-- Revert whatsapp_handler:outbox/event_envelope from pg
BEGIN;

DROP FUNCTION whatsapp_handler._emit_event(text, bigint, jsonb);

COMMIT;
