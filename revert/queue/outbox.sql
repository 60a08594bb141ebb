-- Revert whatsapp_handler:queue/outbox from pg
BEGIN;

DO $$ BEGIN PERFORM pgmq.drop_queue('outbox'); END $$;

COMMIT;
