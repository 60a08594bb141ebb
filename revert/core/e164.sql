-- Revert whatsapp_handler:core/e164 from pg
BEGIN;

DROP DOMAIN whatsapp_handler.e164;
DROP FUNCTION whatsapp_handler._is_e164(text);

COMMIT;
