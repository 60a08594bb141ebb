-- Revert whatsapp_handler:queue/outbound from pg
BEGIN;

DO $$ BEGIN PERFORM pgmq.drop_queue('outbound'); END $$;

COMMIT;
