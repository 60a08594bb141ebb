-- Revert whatsapp_handler:fn_emit_event from pg
BEGIN;

DROP FUNCTION whatsapp_handler._emit_event(text, bigint, jsonb);

COMMIT;
