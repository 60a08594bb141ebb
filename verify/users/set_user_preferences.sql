-- Verify whatsapp_handler:users/set_user_preferences on pg
BEGIN;

SELECT whatsapp_handler._assert_function('whatsapp_handler.set_user_preferences(bigint, jsonb)', '{}');

ROLLBACK;
