-- Deploy whatsapp_handler:messages/status_pricing to pg
-- requires: messages/status_events
-- What a provider says a message costs comes with its sent and delivered statuses (Meta's
-- pricing: billable, pricing_model, category, type; its conversation: id, origin, expiry)
-- and nowhere else: kept with the status, as reported, for the events and the analytics'
-- cost per category (analytics/delivery_costs). A column of its own, beside errors, so
-- that a status of a provider without pricing (Twilio, Evolution) leaves it NULL.
BEGIN;
SET LOCAL ROLE whatsapp_handler_owner;

ALTER TABLE whatsapp_handler.message_status_events
    ADD COLUMN pricing jsonb CONSTRAINT message_status_events_pricing_object CHECK (jsonb_typeof(pricing) = 'object');
COMMENT ON COLUMN whatsapp_handler.message_status_events.pricing IS 'What the provider said the message costs, as reported with a sent or delivered status: Meta''s pricing object (billable, pricing_model, category, type) with its conversation object under "conversation"; NULL when the status carried none.';
COMMENT ON COLUMN whatsapp_handler.message_status_events.errors IS 'The provider''s errors of a failed status, as reported (Meta: code, title, message, error_data.details, href); NULL for other statuses.';

COMMIT;
