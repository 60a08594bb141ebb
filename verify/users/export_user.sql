-- Verify whatsapp_handler:users/export_user on pg
BEGIN;

SELECT whatsapp_handler._assert_function('whatsapp_handler.export_user(bigint)', '{}');

ROLLBACK;
