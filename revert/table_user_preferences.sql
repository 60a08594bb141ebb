-- Revert whatsapp_handler:table_user_preferences from pg
BEGIN;

DROP TABLE whatsapp_handler.user_preferences;

COMMIT;
