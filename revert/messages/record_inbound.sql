-- Revert whatsapp_handler:messages/record_inbound from pg
BEGIN;

DROP FUNCTION whatsapp_handler._tally(jsonb, text);
DROP FUNCTION whatsapp_handler._record_inbound(bigint, text, text, text, text, text, jsonb, text, bigint);
DROP FUNCTION whatsapp_handler._message_received(bigint, bigint, bigint, text, text, text, jsonb, text);

COMMIT;
