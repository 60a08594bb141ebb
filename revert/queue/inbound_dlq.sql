-- Revert whatsapp_handler:queue/inbound_dlq from pg
BEGIN;

DROP FUNCTION whatsapp_handler._dead_letter_inbound(jsonb);
DO $$ BEGIN PERFORM pgmq.drop_queue('inbound_dlq'); END $$;

COMMIT;
