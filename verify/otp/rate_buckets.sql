-- Verify whatsapp_handler:otp/rate_buckets on pg
BEGIN;

SELECT bucket, tokens, updated_at FROM whatsapp_handler.otp_rate_buckets WHERE FALSE;
SELECT whatsapp_handler._assert_function('whatsapp_handler._take_otp_token(text, integer, integer)', '{}');
-- The rates and bursts are rows a DBA changes; each must be there and a whole number in range.
SELECT whatsapp_handler._setting_integer(k, 1, 100000)
FROM unnest(ARRAY['otp.limit.per_key.per_minute', 'otp.limit.per_key.burst',
                  'otp.limit.overall.per_minute', 'otp.limit.overall.burst']) AS k;
-- No role but the owner reads or writes the buckets: they move only through request_otp.
SELECT 1 / (NOT has_table_privilege(r, 'whatsapp_handler.otp_rate_buckets', 'SELECT, INSERT, UPDATE, DELETE, TRUNCATE'))::int
FROM unnest(ARRAY['public', 'whatsapp_handler_relay', 'whatsapp_handler_worker', 'whatsapp_handler_analyst',
                  'whatsapp_handler_consumer']) AS r;

ROLLBACK;
