-- Revert whatsapp_handler:users/export_user from pg
BEGIN;

DROP FUNCTION whatsapp_handler.export_user(bigint);

COMMIT;
