-- Revert whatsapp_handler:providers/carries from pg
BEGIN;

DROP FUNCTION whatsapp_handler._check_carries(whatsapp_handler.provider, jsonb, whatsapp_handler.message_templates);

COMMIT;
