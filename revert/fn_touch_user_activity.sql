-- Revert whatsapp_handler:fn_touch_user_activity from pg
BEGIN;

DROP FUNCTION whatsapp_handler.touch_user_activity(bigint);

COMMIT;
