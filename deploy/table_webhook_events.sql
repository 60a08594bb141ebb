-- Deploy whatsapp_handler:table_webhook_events to pg
-- requires: table_channels fn_create_partition
BEGIN;
SET LOCAL ROLE whatsapp_handler_owner;

CREATE TABLE whatsapp_handler.webhook_events (
    id             bigint GENERATED ALWAYS AS IDENTITY,
    received_at    timestamptz NOT NULL DEFAULT now(),
    provider       whatsapp_handler.provider NOT NULL,
    channel_id     bigint REFERENCES whatsapp_handler.channels (id),
    correlation_id text CONSTRAINT webhook_events_correlation_id_length CHECK (char_length(correlation_id) <= 128),
    payload        jsonb NOT NULL,
    outcome        text NOT NULL DEFAULT 'stored'
                   CONSTRAINT webhook_events_outcome_known CHECK (outcome IN ('stored', 'processed', 'failed')),
    error          text,
    CONSTRAINT webhook_events_error_only_when_failed CHECK ((outcome = 'failed') = (error IS NOT NULL)),
    PRIMARY KEY (id, received_at)
) PARTITION BY RANGE (received_at);
COMMENT ON TABLE whatsapp_handler.webhook_events IS 'Raw webhook bodies as received, one row per request; daily partitions, dropped past retention.';
COMMENT ON COLUMN whatsapp_handler.webhook_events.payload IS 'The body as JSON (Twilio form fields as an object of strings).';
COMMENT ON COLUMN whatsapp_handler.webhook_events.outcome IS 'stored: kept raw; processed: normalised; failed: could not be understood (error says why, a dead letter was queued).';

-- A catch-all so that a missing partition can never lose a webhook; the maintenance
-- job creates partitions ahead so it stays empty.
CREATE TABLE whatsapp_handler.webhook_events_default PARTITION OF whatsapp_handler.webhook_events DEFAULT;
DO $$ BEGIN PERFORM whatsapp_handler.create_partitions('whatsapp_handler.webhook_events', 'day', 7); END $$;


COMMIT;
