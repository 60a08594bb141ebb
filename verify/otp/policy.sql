-- Verify whatsapp_handler:otp/policy on pg
BEGIN;

SELECT whatsapp_handler._assert_function('whatsapp_handler._otp_policy()', '{}');
SELECT whatsapp_handler._assert_function('whatsapp_handler._retry_after(numeric)', '{}');
-- Every row of the policy is there and in range (a bad one would make the OTP API answer 503).
SELECT 1 / (max_failures > 0)::int FROM whatsapp_handler._otp_policy();
SELECT 1 / (whatsapp_handler._retry_after(41.2) = '{"retry_after_seconds": 42}')::int;

ROLLBACK;
