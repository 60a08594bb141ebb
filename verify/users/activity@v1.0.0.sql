-- Verify whatsapp_handler:users/activity on pg
BEGIN;

SELECT whatsapp_handler._assert_function('whatsapp_handler.touch_user_activity(bigint)', '{}');
SELECT whatsapp_handler._assert_function('whatsapp_handler._touch_activity(bigint[], interval)', '{}');

ROLLBACK;
