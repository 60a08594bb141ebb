-- Revert whatsapp_handler:table_conversations from pg
BEGIN;

DROP TABLE whatsapp_handler.conversations;

COMMIT;
