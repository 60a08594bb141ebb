-- Revert whatsapp_handler:messages/messages from pg
BEGIN;

DROP TABLE whatsapp_handler.message_keys;
DROP TABLE whatsapp_handler.messages;
DROP TYPE whatsapp_handler.message_status;
DROP TYPE whatsapp_handler.message_direction;

COMMIT;
