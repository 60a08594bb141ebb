-- Revert whatsapp_handler:table_webhook_events from pg
BEGIN;

DROP TABLE whatsapp_handler.webhook_events;

COMMIT;
