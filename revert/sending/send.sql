-- Revert whatsapp_handler:sending/send from pg
BEGIN;

DROP FUNCTION whatsapp_handler.message_view(bytea, bigint, text);
DROP FUNCTION whatsapp_handler.send_messages(bytea, bigint, jsonb, text);
DROP FUNCTION whatsapp_handler.send_message(bytea, jsonb, text, text);
DROP FUNCTION whatsapp_handler._send_one(bigint, bigint, jsonb, text);
DROP TABLE whatsapp_handler.send_requests;

COMMIT;
