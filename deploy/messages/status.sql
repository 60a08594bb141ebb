-- Deploy whatsapp_handler:messages/status to pg
-- requires: messages/status_events messages/status_order messages/status_pricing consent/consents
-- A delivery status as the provider reports it: kept, and moving the message on
-- through the status order (messages/status_order). Reworked after v1.0.0: a status
-- keeps the provider's pricing beside its errors (messages/status_pricing) and passes both
-- to the event; a failure with Meta's 131050 ("user stopped marketing messages") is the
-- person's opt-out from that channel, recorded as a STOP would be (consent/consents), so
-- that the next marketing template is refused before it is sent and counted against the
-- number's quality.
BEGIN;
SET LOCAL ROLE whatsapp_handler_owner;

CREATE FUNCTION whatsapp_handler._record_status(p_channel_id bigint, p_provider_message_id text, p_status text,
                                                p_occurred_at timestamptz, p_errors jsonb, p_webhook_event_id bigint,
                                                p_pricing jsonb)
RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
DECLARE
    v_key      message_keys;
    v_status   message_status := p_status::message_status;
    v_errors   jsonb := nullif(p_errors, 'null');
    v_pricing  jsonb := nullif(p_pricing, 'null');
    v_moved    boolean;
    v_user_id  bigint;
BEGIN
    SELECT * INTO v_key FROM message_keys WHERE channel_id = p_channel_id AND provider_message_id = p_provider_message_id;
    -- Every report is kept as reported, even late or repeated ones.
    INSERT INTO message_status_events (channel_id, provider_message_id, message_id, status, occurred_at, errors, pricing,
                                       webhook_event_id)
    VALUES (p_channel_id, p_provider_message_id, v_key.message_id, v_status, coalesce(p_occurred_at, now()),
            v_errors, v_pricing, p_webhook_event_id);
    IF v_key.message_id IS NULL THEN
        RETURN false;  -- not sent by us yet, or not by us: the worker joins it later
    END IF;
    v_moved := _advance_status(v_key.message_id, v_key.message_created_at, v_status, p_occurred_at,
                               p_provider_message_id, v_errors, p_channel_id, v_pricing);
    -- Whether or not the failure moved the message (another device may have had it), the
    -- person said no to marketing: their opt-out holds for the channel from now on.
    IF v_status = 'failed' AND jsonb_typeof(v_errors) = 'array'
       AND EXISTS (SELECT FROM jsonb_array_elements(v_errors) e WHERE e ->> 'code' = '131050') THEN
        SELECT user_id INTO v_user_id FROM messages
        WHERE id = v_key.message_id AND created_at = v_key.message_created_at;
        IF v_user_id IS NOT NULL THEN
            PERFORM _record_consent(v_user_id, p_channel_id, false, 'provider:131050');
        END IF;
    END IF;
    RETURN v_moved;
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler._record_status(bigint, text, text, timestamptz, jsonb, bigint, jsonb) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler._record_status(bigint, text, text, timestamptz, jsonb, bigint, jsonb) IS
    'Internal: records a delivery status as reported, with the provider''s errors and pricing, and moves the message''s status forward when it ranks later in the order queued < sent < failed < delivered < read (emitting message.status_changed with both); a failure with error 131050 records the person''s opt-out on the channel (source provider:131050). Returns whether the message moved. Raises 22P02 for a status that is not a message_status.';

-- The released signature, for the normalisers whose providers report no pricing (Twilio,
-- Evolution): the same record, through the one body above.
CREATE OR REPLACE FUNCTION whatsapp_handler._record_status(p_channel_id bigint, p_provider_message_id text, p_status text,
                                                           p_occurred_at timestamptz, p_errors jsonb, p_webhook_event_id bigint)
RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
BEGIN
    RETURN _record_status(p_channel_id, p_provider_message_id, p_status, p_occurred_at, p_errors, p_webhook_event_id,
                          NULL::jsonb);
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler._record_status(bigint, text, text, timestamptz, jsonb, bigint) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler._record_status(bigint, text, text, timestamptz, jsonb, bigint) IS
    'Internal: _record_status without pricing (Twilio''s and Evolution''s statuses): records the status as reported and moves the message forward in the order queued < sent < failed < delivered < read; returns whether it moved. Raises 22P02 for a status that is not a message_status.';

COMMIT;
