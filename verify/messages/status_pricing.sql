-- Verify whatsapp_handler:messages/status_pricing on pg
BEGIN;

SELECT pricing FROM whatsapp_handler.message_status_events WHERE false;
-- Only an object is a pricing: a provider's array or string would be a normaliser's mistake.
SELECT 1 / count(*) FROM pg_catalog.pg_constraint
WHERE conrelid = 'whatsapp_handler.message_status_events'::regclass AND conname = 'message_status_events_pricing_object';

ROLLBACK;
