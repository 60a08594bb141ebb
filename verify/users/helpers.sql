-- Verify whatsapp_handler:users/helpers on pg
BEGIN;

SELECT whatsapp_handler._assert_function('whatsapp_handler._check_phone(text)', '{}');
SELECT whatsapp_handler._assert_function('whatsapp_handler._lock_user(bigint, boolean)', '{}');
SELECT whatsapp_handler._assert_function('whatsapp_handler._complete_onboarding(bigint)', '{}');
SELECT 1 / (to_regprocedure('whatsapp_handler._complete_registration(bigint)') IS NULL)::int;
SELECT 1 / (whatsapp_handler._check_phone('+447700900123') = '+447700900123')::int;

ROLLBACK;
