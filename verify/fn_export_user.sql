-- Verify whatsapp_handler:fn_export_user on pg
BEGIN;

SELECT whatsapp_handler._assert_function('whatsapp_handler.export_user(bigint)', '{}');

ROLLBACK;
