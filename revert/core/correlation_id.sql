-- Revert whatsapp_handler:core/correlation_id from pg
BEGIN;

DROP FUNCTION whatsapp_handler.correlation_id();

COMMIT;
