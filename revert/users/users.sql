-- Revert whatsapp_handler:users/users from pg
BEGIN;

DROP TABLE whatsapp_handler.users;

COMMIT;
