-- Verify whatsapp_handler:sending/send on pg
BEGIN;

SELECT api_key_id, idempotency_key, request_hash, message_id, message_created_at, created_at
FROM whatsapp_handler.send_requests WHERE FALSE;
SELECT 1 / count(*) FROM whatsapp_handler.settings WHERE key = 'retention.send_requests';
SELECT 1 / (NOT has_table_privilege('whatsapp_handler_relay', 'whatsapp_handler.send_requests', 'select'))::int;
SELECT whatsapp_handler._assert_function('whatsapp_handler._send_one(bigint, bigint, jsonb, text)', '{}');
SELECT whatsapp_handler._assert_function('whatsapp_handler._check_not_blocked(timestamptz)', '{}');
SELECT whatsapp_handler._assert_function('whatsapp_handler._queue_business(whatsapp_handler.channels, text, jsonb, bigint, timestamptz, jsonb, timestamptz)', '{}');
SELECT whatsapp_handler._assert_function('whatsapp_handler.send_message(bytea, jsonb, text, text)', '{whatsapp_handler_relay}');
SELECT whatsapp_handler._assert_function('whatsapp_handler.send_messages(bytea, bigint, jsonb, text)', '{whatsapp_handler_relay}');

ROLLBACK;
