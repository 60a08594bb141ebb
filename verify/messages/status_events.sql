-- Verify whatsapp_handler:messages/status_events on pg
BEGIN;

SELECT id, received_at, channel_id, provider_message_id, message_id, status, occurred_at, errors, webhook_event_id
FROM whatsapp_handler.message_status_events WHERE FALSE;
SELECT 1 / count(*) FROM pg_catalog.pg_partitioned_table
WHERE partrelid = 'whatsapp_handler.message_status_events'::regclass;

ROLLBACK;
