-- Revert whatsapp_handler:otp/rate_buckets from pg
BEGIN;
\ir ../kept.sql

DROP FUNCTION whatsapp_handler._take_otp_token(text, integer, integer);
WITH gone AS (DELETE FROM whatsapp_handler.settings WHERE key IN ('otp.limit.per_key.per_minute', 'otp.limit.per_key.burst',
                                                    'otp.limit.overall.per_minute', 'otp.limit.overall.burst') RETURNING *)
SELECT whatsapp_handler_kept.keep('setting', jsonb_agg(to_jsonb(gone))) FROM gone;
DROP TABLE whatsapp_handler.otp_rate_buckets;

COMMIT;
