-- Revert whatsapp_handler:fn_context from pg
BEGIN;

DROP FUNCTION whatsapp_handler.correlation_id();

COMMIT;
