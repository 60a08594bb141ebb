-- Revert whatsapp_handler:sending/read_receipts from pg
BEGIN;

DROP FUNCTION whatsapp_handler.mark_read(bytea, bigint, text, boolean, text);

COMMIT;
