-- Revert whatsapp_handler:messages/status_order from pg
BEGIN;

DROP FUNCTION whatsapp_handler._advance_status(bigint, timestamptz, whatsapp_handler.message_status, timestamptz, text, jsonb, bigint);

COMMIT;
