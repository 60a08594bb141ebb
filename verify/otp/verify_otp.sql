-- Verify whatsapp_handler:otp/verify_otp on pg
BEGIN;

SELECT whatsapp_handler._assert_function('whatsapp_handler.verify_otp(text, text, text)', '{whatsapp_handler_relay}');
-- Onboarding is stamped by the helper of that name (_complete_registration is gone).
SELECT 1 / (prosrc LIKE '%\_complete\_onboarding(%')::int FROM pg_catalog.pg_proc
WHERE oid = 'whatsapp_handler.verify_otp(text, text, text)'::regprocedure;

ROLLBACK;
