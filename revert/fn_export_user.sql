-- Revert whatsapp_handler:fn_export_user from pg
BEGIN;

DROP FUNCTION whatsapp_handler.export_user(bigint);

COMMIT;
