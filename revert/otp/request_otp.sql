-- Revert whatsapp_handler:otp/request_otp from pg
BEGIN;

DROP FUNCTION whatsapp_handler.request_otp(text, bigint, text, text);
DROP FUNCTION whatsapp_handler._check_otp_destination(text);
DROP FUNCTION whatsapp_handler._new_otp_code();
DELETE FROM whatsapp_handler.settings WHERE key = 'otp.country_codes';

COMMIT;
