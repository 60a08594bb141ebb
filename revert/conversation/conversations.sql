-- Revert whatsapp_handler:conversation/conversations from pg
BEGIN;

DROP TABLE whatsapp_handler.conversations;

COMMIT;
