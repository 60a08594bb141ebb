-- Revert whatsapp_handler:messages/status_pricing from pg
-- The pricing the statuses reported goes with the column (the raw webhooks keep it).
BEGIN;
SET LOCAL ROLE whatsapp_handler_owner;

ALTER TABLE whatsapp_handler.message_status_events DROP COLUMN pricing;
COMMENT ON COLUMN whatsapp_handler.message_status_events.errors IS NULL;

COMMIT;
