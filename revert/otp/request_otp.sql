-- Revert whatsapp_handler:otp/request_otp from pg
BEGIN;
\ir ../kept.sql

DROP FUNCTION whatsapp_handler.request_otp(text, bigint, text, text);
DROP FUNCTION whatsapp_handler._check_otp_destination(text);
DROP FUNCTION whatsapp_handler._new_otp_code();
WITH gone AS (DELETE FROM whatsapp_handler.settings WHERE key = 'otp.country_codes' RETURNING *)
SELECT whatsapp_handler_kept.keep('setting', jsonb_agg(to_jsonb(gone))) FROM gone;

COMMIT;
