-- Revert whatsapp_handler:messages/status from pg
BEGIN;

DROP FUNCTION whatsapp_handler._record_status(bigint, text, text, timestamptz, jsonb, bigint);

COMMIT;
