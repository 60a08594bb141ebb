-- Revert whatsapp_handler:queue/outbound from pg
BEGIN;

DROP FUNCTION whatsapp_handler._release_outbound(bigint, double precision);
DROP FUNCTION whatsapp_handler._retry_outbound(bigint, double precision, jsonb);
DROP FUNCTION whatsapp_handler._delete_outbound(bigint);
DROP FUNCTION whatsapp_handler._lock_outbound(bigint);
DROP FUNCTION whatsapp_handler._enqueue_outbound(jsonb, text);
DO $$ BEGIN PERFORM pgmq.drop_queue('outbound'); END $$;

COMMIT;
