-- Verify whatsapp_handler:otp/challenges on pg
BEGIN;

SELECT id, user_id, channel_id, status, code_hash, failed_attempts, created_at, expires_at, resolved_at
FROM whatsapp_handler.otp_challenges WHERE FALSE;
SELECT 1 / count(*) FROM pg_catalog.pg_indexes
WHERE schemaname = 'whatsapp_handler' AND indexname = 'otp_challenges_one_pending_per_user'
  AND indexdef LIKE '%UNIQUE%WHERE%pending%';
-- No column may hold a plaintext code.
SELECT 1 / (count(*) = 0)::int FROM pg_catalog.pg_attribute
WHERE attrelid = 'whatsapp_handler.otp_challenges'::regclass AND attname = 'code' AND NOT attisdropped;

ROLLBACK;
