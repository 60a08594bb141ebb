-- Verify whatsapp_handler:fn_request_otp on pg
BEGIN;

SELECT whatsapp_handler._assert_function('whatsapp_handler.request_otp(text, bigint)', '{whatsapp_handler_relay}');
SELECT whatsapp_handler._assert_function('whatsapp_handler._new_otp_code()', '{}');
SELECT 1 / (whatsapp_handler._new_otp_code() ~ '^[0-9]{6}$')::int;

ROLLBACK;
