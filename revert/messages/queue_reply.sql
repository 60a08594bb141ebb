-- Revert whatsapp_handler:messages/queue_reply from pg
BEGIN;

DROP FUNCTION whatsapp_handler._queue_reply(bigint, text, text);

COMMIT;
