-- Revert whatsapp_handler:fn_erase_user from pg
BEGIN;

DROP FUNCTION whatsapp_handler.erase_user(bigint);

COMMIT;
