-- Revert whatsapp_handler:table_users from pg
BEGIN;

DROP TABLE whatsapp_handler.users;

COMMIT;
