-- Revert whatsapp_handler:users/register_user from pg
BEGIN;

DROP FUNCTION whatsapp_handler.register_user(text, bigint, text);

COMMIT;
