-- Revert whatsapp_handler:fn_register_user from pg
BEGIN;

DROP FUNCTION whatsapp_handler.register_user(text, bigint, text);

COMMIT;
