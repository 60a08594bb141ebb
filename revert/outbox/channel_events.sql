-- Revert whatsapp_handler:outbox/channel_events from pg
-- Events already queued stay on the outbox for the consumers.
BEGIN;
SET LOCAL ROLE whatsapp_handler_owner;

DROP FUNCTION whatsapp_handler._emit_channel_event(text, bigint, jsonb);

COMMIT;
