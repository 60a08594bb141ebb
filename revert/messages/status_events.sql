-- Revert whatsapp_handler:messages/status_events from pg
BEGIN;

DROP TABLE whatsapp_handler.message_status_events;

COMMIT;
