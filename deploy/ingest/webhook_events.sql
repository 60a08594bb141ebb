-- Deploy whatsapp_handler:ingest/webhook_events to pg
-- requires: core/channels core/partitions
BEGIN;
SET LOCAL ROLE whatsapp_handler_owner;

CREATE TABLE whatsapp_handler.webhook_events (
    id             bigint GENERATED ALWAYS AS IDENTITY,
    received_at    timestamptz NOT NULL DEFAULT now(),
    provider       whatsapp_handler.provider NOT NULL,
    channel_id     bigint REFERENCES whatsapp_handler.channels (id),
    correlation_id text CONSTRAINT webhook_events_correlation_id_length CHECK (char_length(correlation_id) <= 128),
    payload        jsonb,
    raw            bytea,
    note           text CONSTRAINT webhook_events_note_length CHECK (char_length(note) <= 1000),
    outcome        text NOT NULL DEFAULT 'stored'
                   CONSTRAINT webhook_events_outcome_known CHECK (outcome IN ('stored', 'processed', 'failed')),
    error          text,
    CONSTRAINT webhook_events_error_only_when_failed CHECK ((outcome = 'failed') = (error IS NOT NULL)),
    -- A body jsonb cannot hold is kept as received (raw) and dead-lettered: never processed.
    CONSTRAINT webhook_events_payload_or_failed_raw CHECK (payload IS NOT NULL OR (raw IS NOT NULL AND outcome = 'failed')),
    CONSTRAINT webhook_events_raw_with_note CHECK ((raw IS NULL) = (note IS NULL)),
    PRIMARY KEY (id, received_at)
) PARTITION BY RANGE (received_at);
COMMENT ON TABLE whatsapp_handler.webhook_events IS 'Raw webhook bodies as received, one row per request; daily partitions, dropped past retention.';
COMMENT ON COLUMN whatsapp_handler.webhook_events.payload IS 'The body as JSON (Twilio form fields as an object of strings); cleaned when note says so; NULL when the body is not JSON at all (raw keeps it).';
COMMENT ON COLUMN whatsapp_handler.webhook_events.raw IS 'The body as received, kept only when payload is not it: cleaned (a \u0000, a lone surrogate, bytes that are not UTF-8, a number jsonb cannot hold) or not JSON.';
COMMENT ON COLUMN whatsapp_handler.webhook_events.note IS 'Set with raw: what was changed to make payload, or why the body could not be read as JSON (then the event is failed and dead-lettered with WH045).';
COMMENT ON COLUMN whatsapp_handler.webhook_events.outcome IS 'stored: kept raw; processed: normalised; failed: could not be understood (error says why, a dead letter was queued).';

-- A catch-all so that a missing partition can never lose a webhook; the maintenance
-- job creates partitions ahead so it stays empty.
CREATE TABLE whatsapp_handler.webhook_events_default PARTITION OF whatsapp_handler.webhook_events DEFAULT;
DO $$ BEGIN PERFORM whatsapp_handler.create_partitions('whatsapp_handler.webhook_events', 'day', 7); END $$;


COMMIT;
