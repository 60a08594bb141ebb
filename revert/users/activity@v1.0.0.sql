-- Revert whatsapp_handler:users/activity from pg
BEGIN;

DROP FUNCTION whatsapp_handler.touch_user_activity(bigint);
DROP FUNCTION whatsapp_handler._touch_activity(bigint[], interval);

COMMIT;
