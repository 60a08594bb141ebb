-- Revert whatsapp_handler:ingest/webhook_events from pg
BEGIN;

DROP TABLE whatsapp_handler.webhook_events;

COMMIT;
