-- Deploy whatsapp_handler:messages/messages to pg
-- requires: conversation/conversations core/channels users/users core/partitions
BEGIN;
SET LOCAL ROLE whatsapp_handler_owner;

CREATE TYPE whatsapp_handler.message_direction AS ENUM ('inbound', 'outbound');
CREATE TYPE whatsapp_handler.message_status AS ENUM ('received', 'queued', 'sent', 'delivered', 'read', 'failed');
COMMENT ON TYPE whatsapp_handler.message_status IS 'received: inbound; queued → sent → delivered → read for outbound, or failed. Ordered so that a late status never overwrites a later one.';

CREATE TABLE whatsapp_handler.messages (
    id                  bigint GENERATED ALWAYS AS IDENTITY,
    created_at          timestamptz NOT NULL DEFAULT now(),
    channel_id          bigint NOT NULL REFERENCES whatsapp_handler.channels (id),
    user_id             bigint REFERENCES whatsapp_handler.users (id),
    conversation_id     bigint REFERENCES whatsapp_handler.conversations (id) ON DELETE SET NULL,
    direction           whatsapp_handler.message_direction NOT NULL,
    provider_message_id text CONSTRAINT messages_provider_message_id_length CHECK (char_length(provider_message_id) BETWEEN 1 AND 256),
    message_type        text NOT NULL CONSTRAINT messages_message_type_shape CHECK (message_type ~ '^[a-z_]{1,32}$'),
    body                text,
    media               jsonb,
    status              whatsapp_handler.message_status NOT NULL,
    status_at           timestamptz NOT NULL DEFAULT now(),
    webhook_event_id    bigint,
    correlation_id      text CONSTRAINT messages_correlation_id_length CHECK (char_length(correlation_id) <= 128),
    CONSTRAINT messages_inbound_has_provider_id CHECK (direction = 'outbound' OR provider_message_id IS NOT NULL),
    CONSTRAINT messages_inbound_status_received CHECK ((direction = 'inbound') = (status = 'received')),
    PRIMARY KEY (id, created_at)
) PARTITION BY RANGE (created_at);
COMMENT ON TABLE whatsapp_handler.messages IS 'Inbound and outbound WhatsApp messages; monthly partitions. One row per channel and provider message id (see message_keys).';
COMMENT ON COLUMN whatsapp_handler.messages.provider_message_id IS 'Meta wamid, Twilio MessageSid, Evolution key.id; NULL for an outbound message not yet accepted by the provider.';
COMMENT ON COLUMN whatsapp_handler.messages.webhook_event_id IS 'The raw webhook it came from (webhook_events.id); no foreign key because that table is partitioned and dropped by partition.';

-- A unique constraint on a partitioned table must include the partition key, which would
-- not make provider ids unique: the de-duplication keys live in a table of their own.
CREATE TABLE whatsapp_handler.message_keys (
    channel_id          bigint NOT NULL REFERENCES whatsapp_handler.channels (id),
    provider_message_id text NOT NULL,
    message_id          bigint NOT NULL,
    message_created_at  timestamptz NOT NULL,
    PRIMARY KEY (channel_id, provider_message_id)
);
COMMENT ON TABLE whatsapp_handler.message_keys IS 'One row per (channel, provider message id): the claim that makes ingestion idempotent, and the way from a status to its message.';

-- A user's history (GDPR export and erasure, conversation views).
CREATE INDEX messages_user_created_idx ON whatsapp_handler.messages (user_id, created_at);
-- Retention and GDPR find the raw events behind a message.
CREATE INDEX messages_webhook_event_idx ON whatsapp_handler.messages (webhook_event_id) WHERE webhook_event_id IS NOT NULL;

CREATE TABLE whatsapp_handler.messages_default PARTITION OF whatsapp_handler.messages DEFAULT;
DO $$ BEGIN PERFORM whatsapp_handler.create_partitions('whatsapp_handler.messages', 'month', 2); END $$;


COMMIT;
