-- Revert whatsapp_handler:users/activity from pg
BEGIN;

DROP FUNCTION whatsapp_handler.touch_user_activity(bigint);

COMMIT;
