-- Revert whatsapp_handler:sending/send from pg
BEGIN;
\ir ../kept.sql

DROP FUNCTION whatsapp_handler.send_messages(bytea, bigint, jsonb, text);
DROP FUNCTION whatsapp_handler.send_message(bytea, jsonb, text, text);
DROP FUNCTION whatsapp_handler._send_one(bigint, bigint, jsonb, text);
DROP FUNCTION whatsapp_handler._queue_business(whatsapp_handler.channels, text, jsonb, bigint, timestamptz, jsonb, timestamptz);
DROP FUNCTION whatsapp_handler._check_not_blocked(timestamptz);
DROP TABLE whatsapp_handler.send_requests;
WITH gone AS (DELETE FROM whatsapp_handler.settings WHERE key = 'retention.send_requests' RETURNING *)
SELECT whatsapp_handler_kept.keep('setting', jsonb_agg(to_jsonb(gone))) FROM gone;

COMMIT;
