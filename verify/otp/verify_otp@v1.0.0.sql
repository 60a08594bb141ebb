-- Verify whatsapp_handler:otp/verify_otp on pg
BEGIN;

SELECT whatsapp_handler._assert_function('whatsapp_handler.verify_otp(text, text, text)', '{whatsapp_handler_relay}');

ROLLBACK;
