-- Revert whatsapp_handler:otp/policy from pg
BEGIN;
\ir ../kept.sql

DROP FUNCTION whatsapp_handler._retry_after(numeric);
DROP FUNCTION whatsapp_handler._otp_policy();
WITH gone AS (DELETE FROM whatsapp_handler.settings
WHERE key IN ('otp.code_ttl', 'otp.cooldown', 'otp.window', 'otp.per_window', 'otp.max_failures') RETURNING *)
SELECT whatsapp_handler_kept.keep('setting', jsonb_agg(to_jsonb(gone))) FROM gone;

COMMIT;
