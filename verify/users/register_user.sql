-- Verify whatsapp_handler:users/register_user on pg
BEGIN;

SELECT whatsapp_handler._assert_function('whatsapp_handler.register_user(text, bigint, text)', '{}');

ROLLBACK;
