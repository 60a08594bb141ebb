-- Revert whatsapp_handler:fn_request_otp from pg
BEGIN;

DROP FUNCTION whatsapp_handler.request_otp(text, bigint);
DROP FUNCTION whatsapp_handler._new_otp_code();

COMMIT;
