-- Revert whatsapp_handler:users/preferences from pg
BEGIN;

DROP TABLE whatsapp_handler.user_preferences;

COMMIT;
