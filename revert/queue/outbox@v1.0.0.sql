-- Revert whatsapp_handler:queue/outbox from pg
BEGIN;

DROP FUNCTION whatsapp_handler._delay_outbox(bigint, integer);
DROP FUNCTION whatsapp_handler._enqueue_outbox(jsonb[], text[]);
DO $$ BEGIN PERFORM pgmq.drop_queue('outbox'); END $$;

COMMIT;
