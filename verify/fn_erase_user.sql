-- Verify whatsapp_handler:fn_erase_user on pg
BEGIN;

SELECT whatsapp_handler._assert_function('whatsapp_handler.erase_user(bigint)', '{}');

ROLLBACK;
