-- Verify whatsapp_handler:otp/request_otp on pg
BEGIN;

SELECT whatsapp_handler._assert_function('whatsapp_handler.request_otp(text, bigint, text, text)', '{whatsapp_handler_relay}');
SELECT whatsapp_handler._assert_function('whatsapp_handler._new_otp_code()', '{}');
SELECT whatsapp_handler._assert_function('whatsapp_handler._check_otp_destination(text)', '{}');
SELECT 1 / (whatsapp_handler._new_otp_code() ~ '^[0-9]{6}$')::int;
-- The destination list is a row a DBA sets (null until then), never absent.
SELECT 1 / count(*) FROM whatsapp_handler.settings WHERE key = 'otp.country_codes';

ROLLBACK;
