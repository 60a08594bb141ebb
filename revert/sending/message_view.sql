-- Revert whatsapp_handler:sending/message_view from pg
BEGIN;

DROP FUNCTION whatsapp_handler.message_view(bytea, bigint);
DROP FUNCTION whatsapp_handler._message_delivery(bigint, bigint);

COMMIT;
