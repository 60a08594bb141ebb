-- Deploy whatsapp_handler:providers/twilio to pg
-- requires: messages/record_inbound messages/status core/channels
-- Twilio posts form fields (here a JSON object of strings): inbound messages
-- (MessageSid, From/To "whatsapp:+E164", Body, NumMedia, MediaUrlN, ProfileName) and
-- status callbacks (MessageStatus, ErrorCode), which come from the business number.
BEGIN;
SET LOCAL ROLE whatsapp_handler_owner;

-- Routing: an inbound message is addressed To the business number, a status callback
-- (MessageStatus other than received) comes From it. SQL expressions without a
-- search_path, so that they are inlined where they are called.
CREATE FUNCTION whatsapp_handler._twilio_is_callback(p_params jsonb)
RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT coalesce(p_params OPERATOR(pg_catalog.->>) 'MessageStatus', 'received') OPERATOR(pg_catalog.<>) 'received'
$$;
REVOKE ALL ON FUNCTION whatsapp_handler._twilio_is_callback(jsonb) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler._twilio_is_callback(jsonb) IS
    'Internal: whether Twilio form fields are a status callback (a MessageStatus other than received) rather than an inbound message. Raises nothing.';

CREATE FUNCTION whatsapp_handler._twilio_channel_ref(p_params jsonb)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT p_params OPERATOR(pg_catalog.->>) CASE WHEN whatsapp_handler._twilio_is_callback(p_params) THEN 'From' ELSE 'To' END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler._twilio_channel_ref(jsonb) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler._twilio_channel_ref(jsonb) IS
    'Internal: the channel reference (provider_ref, whatsapp:+E164) Twilio form fields are for: From of a status callback, To of an inbound message. Raises nothing.';

CREATE FUNCTION whatsapp_handler._normalise_twilio(p_params jsonb, p_webhook_event_id bigint)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
DECLARE
    v_counts   jsonb := '{"messages": 0, "duplicates": 0, "statuses": 0, "registrations": 0}';
    v_callback boolean := _twilio_is_callback(p_params);
    v_channel  bigint;
    v_media    jsonb;
    v_type     text;
BEGIN
    IF jsonb_typeof(p_params) <> 'object' OR NOT p_params ? 'MessageSid' THEN
        RAISE EXCEPTION 'not a Twilio message webhook' USING ERRCODE = 'WH012', HINT = 'Expected form fields with MessageSid.';
    END IF;
    SELECT id INTO v_channel FROM channels WHERE provider = 'twilio' AND provider_ref = _twilio_channel_ref(p_params);
    IF v_channel IS NULL THEN
        RAISE EXCEPTION 'no channel for Twilio number %', _twilio_channel_ref(p_params)
            USING ERRCODE = 'WH003', HINT = 'Add the channel (add_channel) and re-drive the dead letter.';
    END IF;

    IF v_callback THEN
        IF p_params ->> 'MessageStatus' IN ('sent', 'delivered', 'read', 'failed', 'undelivered') THEN
            PERFORM _record_status(v_channel, p_params ->> 'MessageSid',
                CASE p_params ->> 'MessageStatus' WHEN 'undelivered' THEN 'failed' ELSE p_params ->> 'MessageStatus' END,
                now(),
                CASE WHEN p_params ? 'ErrorCode' THEN jsonb_build_array(jsonb_build_object(
                    'code', p_params ->> 'ErrorCode', 'message', p_params ->> 'ErrorMessage')) END,
                p_webhook_event_id);
            v_counts := _tally(v_counts, 'status');
        END IF;
        RETURN v_counts;
    END IF;

    SELECT jsonb_agg(jsonb_build_object('url', p_params ->> ('MediaUrl' || n), 'content_type', p_params ->> ('MediaContentType' || n)))
    INTO v_media
    FROM generate_series(0, least(coalesce(nullif(p_params ->> 'NumMedia', '')::integer, 0), 10) - 1) n;
    v_type := CASE
        WHEN p_params ? 'Latitude' THEN 'location'
        WHEN p_params ? 'ButtonPayload' THEN 'button'
        WHEN v_media IS NOT NULL THEN coalesce(substring(v_media -> 0 ->> 'content_type' FROM '^(image|audio|video)/'), 'document')
        ELSE 'text'
    END;
    IF v_type = 'location' THEN
        v_media := jsonb_build_object('latitude', p_params ->> 'Latitude', 'longitude', p_params ->> 'Longitude',
                                      'address', p_params ->> 'Address', 'label', p_params ->> 'Label');
    END IF;
    v_counts := _tally(v_counts, _record_inbound(
        v_channel,
        replace(p_params ->> 'From', 'whatsapp:', ''),
        p_params ->> 'ProfileName',
        p_params ->> 'MessageSid',
        v_type,
        coalesce(nullif(p_params ->> 'Body', ''), p_params ->> 'ButtonText'),
        v_media,
        p_params ->> 'ButtonPayload',
        p_webhook_event_id));
    RETURN v_counts;
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler._normalise_twilio(jsonb, bigint) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler._normalise_twilio(jsonb, bigint) IS
    'Internal: records a Twilio inbound message or status callback (undelivered counts as failed); returns counts. Raises WH012 without MessageSid, WH003 for an unknown number, and what _record_inbound raises.';

COMMIT;
