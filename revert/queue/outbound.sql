-- Revert whatsapp_handler:queue/outbound from pg
BEGIN;

DROP FUNCTION whatsapp_handler._enqueue_outbound(jsonb, text);
DO $$ BEGIN PERFORM pgmq.drop_queue('outbound'); END $$;

COMMIT;
