-- Revert whatsapp_handler:fn_verify_otp from pg
BEGIN;

DROP FUNCTION whatsapp_handler.verify_otp(text, text);

COMMIT;
