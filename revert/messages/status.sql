-- Revert whatsapp_handler:messages/status from pg
-- Puts back the function as v1.0.0 released it (deploy/messages/status@v1.0.0.sql); the
-- pricing variant goes (the column goes with messages/status_pricing).
-- requires: messages/status_events messages/status_order
-- A delivery status as the provider reports it: kept, and moving the message on
-- through the status order (messages/status_order).
BEGIN;
SET LOCAL ROLE whatsapp_handler_owner;

DROP FUNCTION whatsapp_handler._record_status(bigint, text, text, timestamptz, jsonb, bigint, jsonb);

CREATE OR REPLACE FUNCTION whatsapp_handler._record_status(p_channel_id bigint, p_provider_message_id text, p_status text,
                                                p_occurred_at timestamptz, p_errors jsonb, p_webhook_event_id bigint)
RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
DECLARE
    v_key      message_keys;
    v_status   message_status := p_status::message_status;
BEGIN
    SELECT * INTO v_key FROM message_keys WHERE channel_id = p_channel_id AND provider_message_id = p_provider_message_id;
    -- Every report is kept as reported, even late or repeated ones.
    INSERT INTO message_status_events (channel_id, provider_message_id, message_id, status, occurred_at, errors, webhook_event_id)
    VALUES (p_channel_id, p_provider_message_id, v_key.message_id, v_status, coalesce(p_occurred_at, now()),
            nullif(p_errors, 'null'), p_webhook_event_id);
    IF v_key.message_id IS NULL THEN
        RETURN false;  -- not sent by us yet, or not by us: the worker joins it later
    END IF;
    RETURN _advance_status(v_key.message_id, v_key.message_created_at, v_status, p_occurred_at,
                           p_provider_message_id, p_errors, p_channel_id);
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler._record_status(bigint, text, text, timestamptz, jsonb, bigint) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler._record_status(bigint, text, text, timestamptz, jsonb, bigint) IS
    'Internal: records a delivery status as reported and moves the message''s status forward when it is later in the order queued < sent < delivered < read < failed (emitting message.status_changed); returns whether it moved. Raises 22P02 for a status that is not a message_status.';

COMMIT;
