-- Revert whatsapp_handler:queue/inbound_dlq from pg
BEGIN;

DO $$ BEGIN PERFORM pgmq.drop_queue('inbound_dlq'); END $$;

COMMIT;
