-- Revert whatsapp_handler:users/set_user_preferences from pg
BEGIN;

DROP FUNCTION whatsapp_handler.set_user_preferences(bigint, jsonb);

COMMIT;
