-- Deploy whatsapp_handler:messages/status_events to pg
-- requires: messages/messages
BEGIN;
SET LOCAL ROLE whatsapp_handler_owner;

CREATE TABLE whatsapp_handler.message_status_events (
    id                  bigint GENERATED ALWAYS AS IDENTITY,
    received_at         timestamptz NOT NULL DEFAULT now(),
    channel_id          bigint NOT NULL REFERENCES whatsapp_handler.channels (id),
    provider_message_id text NOT NULL CONSTRAINT message_status_events_provider_message_id_length
                        CHECK (char_length(provider_message_id) BETWEEN 1 AND 256),
    message_id          bigint,
    status              whatsapp_handler.message_status NOT NULL
                        CONSTRAINT message_status_events_outbound_status CHECK (status <> 'received'),
    occurred_at         timestamptz NOT NULL,
    errors              jsonb CONSTRAINT message_status_events_errors_array CHECK (jsonb_typeof(errors) = 'array'),
    webhook_event_id    bigint,
    PRIMARY KEY (id, received_at)
) PARTITION BY RANGE (received_at);
COMMENT ON TABLE whatsapp_handler.message_status_events IS 'Every delivery status reported by a provider, as reported (out of order, repeated); monthly partitions.';
COMMENT ON COLUMN whatsapp_handler.message_status_events.message_id IS 'The message it is about once known; a status can arrive before the worker has recorded the provider id.';
COMMENT ON COLUMN whatsapp_handler.message_status_events.occurred_at IS 'The provider''s own timestamp of the status.';

-- Joining late statuses to the message once its provider id is recorded.
CREATE INDEX message_status_events_key_idx ON whatsapp_handler.message_status_events (channel_id, provider_message_id);

CREATE TABLE whatsapp_handler.message_status_events_default PARTITION OF whatsapp_handler.message_status_events DEFAULT;
DO $$ BEGIN PERFORM whatsapp_handler.create_partitions('whatsapp_handler.message_status_events', 'month', 2); END $$;


COMMIT;
