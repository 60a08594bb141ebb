-- Revert whatsapp_handler:otp/policy from pg
BEGIN;

DROP FUNCTION whatsapp_handler._retry_after(numeric);
DROP FUNCTION whatsapp_handler._otp_policy();
DELETE FROM whatsapp_handler.settings
WHERE key IN ('otp.code_ttl', 'otp.cooldown', 'otp.window', 'otp.per_window', 'otp.max_failures');

COMMIT;
