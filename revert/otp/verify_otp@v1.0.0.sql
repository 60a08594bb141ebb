-- Revert whatsapp_handler:otp/verify_otp from pg
BEGIN;

DROP FUNCTION whatsapp_handler.verify_otp(text, text, text);

COMMIT;
