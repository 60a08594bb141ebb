-- Deploy whatsapp_handler:providers/evolution to pg
-- requires: channels/standing
-- Reworked after v1.0.0 (only _normalise_evolution; _evolution_channel_ref is as released):
-- CONNECTION_UPDATE moves the channel's standing (channels/standing): the instance's
-- connection state (open, connecting, close) with Evolution's statusReason and the body's
-- date_time, channel.connection_changed on a change. Like a message, a connection update of
-- an instance no channel has fails with WH003 and is dead-lettered (a re-drive applies it once
-- the channel is added); other events (QRCODE_UPDATED, ...) are still kept raw only.
BEGIN;
SET LOCAL ROLE whatsapp_handler_owner;

CREATE OR REPLACE FUNCTION whatsapp_handler._normalise_evolution(p_payload jsonb, p_webhook_event_id bigint)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
DECLARE
    v_counts  jsonb := '{"messages": 0, "duplicates": 0, "statuses": 0, "registrations": 0}';
    v_event   text := upper(replace(p_payload ->> 'event', '.', '_'));
    v_channel bigint;
    v_item    jsonb;
    v_msg     jsonb;
    v_kind    text;
    v_status  text;
    v_state   text;
    v_at      timestamptz;
BEGIN
    IF jsonb_typeof(p_payload) <> 'object' OR v_event IS NULL THEN
        RAISE EXCEPTION 'not an Evolution API webhook' USING ERRCODE = 'WH012', HINT = 'Expected {"event", "instance", "data"}.';
    END IF;
    IF v_event NOT IN ('MESSAGES_UPSERT', 'MESSAGES_UPDATE', 'CONNECTION_UPDATE') THEN
        RETURN v_counts || '{"outcome": "stored"}';
    END IF;
    SELECT id INTO v_channel FROM channels WHERE provider = 'evolution' AND provider_ref = _evolution_channel_ref(p_payload);
    IF v_channel IS NULL THEN
        RAISE EXCEPTION 'no channel for Evolution instance %', _evolution_channel_ref(p_payload)
            USING ERRCODE = 'WH003', HINT = 'Add the channel (add_channel) and re-drive the dead letter.';
    END IF;

    -- The instance's connection to WhatsApp: {"state": "open" | "connecting" | "close",
    -- "statusReason": <code>}, timed by the body's date_time (Evolution's clock).
    IF v_event = 'CONNECTION_UPDATE' THEN
        v_state := lower(p_payload -> 'data' ->> 'state');
        IF v_state IS NULL OR v_state NOT IN ('open', 'connecting', 'close') THEN
            RETURN v_counts || '{"outcome": "stored"}';
        END IF;
        -- Only a written date and time (never 'now', 'epoch', ...), and one that does not parse
        -- is no time at all rather than a failure.
        IF p_payload ->> 'date_time' ~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}' THEN
            BEGIN
                v_at := (p_payload ->> 'date_time')::timestamptz;
            EXCEPTION WHEN datetime_field_overflow OR invalid_datetime_format OR invalid_time_zone_displacement_value THEN
                v_at := NULL;
            END;
        END IF;
        RETURN v_counts || jsonb_build_object('connection', _channel_connection_update(
            v_channel, v_state,
            CASE WHEN p_payload -> 'data' ->> 'statusReason' ~ '^[0-9]{1,4}$' THEN (p_payload -> 'data' ->> 'statusReason')::integer END,
            v_at));
    END IF;

    -- Versions differ: data is one object or an array of them.
    FOR v_item IN
        SELECT CASE WHEN jsonb_typeof(p_payload -> 'data') = 'array' THEN x ELSE p_payload -> 'data' END
        FROM jsonb_array_elements(CASE WHEN jsonb_typeof(p_payload -> 'data') = 'array'
                                       THEN p_payload -> 'data' ELSE '[null]' END) x
    LOOP
        IF v_event = 'MESSAGES_UPDATE' THEN
            v_status := CASE upper(v_item ->> 'status')
                WHEN 'SERVER_ACK' THEN 'sent' WHEN 'DELIVERY_ACK' THEN 'delivered'
                WHEN 'READ' THEN 'read' WHEN 'PLAYED' THEN 'read' WHEN 'ERROR' THEN 'failed' END;
            CONTINUE WHEN v_status IS NULL;
            PERFORM _record_status(v_channel, coalesce(v_item ->> 'keyId', v_item -> 'key' ->> 'id'), v_status,
                                   now(), NULL, p_webhook_event_id);
            v_counts := _tally(v_counts, 'status');
            CONTINUE;
        END IF;
        -- Our own sends echo back as fromMe; groups and broadcasts are not people.
        CONTINUE WHEN (v_item -> 'key' ->> 'fromMe')::boolean
                   OR v_item -> 'key' ->> 'remoteJid' NOT LIKE '%@s.whatsapp.net';
        v_msg := v_item -> 'message';
        v_kind := v_item ->> 'messageType';
        v_counts := _tally(v_counts, _record_inbound(
            v_channel,
            '+' || split_part(v_item -> 'key' ->> 'remoteJid', '@', 1),
            v_item ->> 'pushName',
            v_item -> 'key' ->> 'id',
            CASE
                WHEN v_kind IN ('conversation', 'extendedTextMessage') THEN 'text'
                WHEN v_kind IN ('buttonsResponseMessage', 'templateButtonReplyMessage', 'listResponseMessage') THEN 'interactive'
                WHEN v_kind ~ '^(image|video|audio|document|sticker|location|contact|reaction)Message$'
                    THEN regexp_replace(v_kind, 'Message$', '')
                ELSE 'unsupported'
            END,
            coalesce(v_msg ->> 'conversation', v_msg -> 'extendedTextMessage' ->> 'text',
                     v_msg -> 'buttonsResponseMessage' ->> 'selectedDisplayText',
                     v_msg -> 'templateButtonReplyMessage' ->> 'selectedDisplayText',
                     v_msg -> 'listResponseMessage' ->> 'title',
                     v_msg -> v_kind ->> 'caption'),
            CASE WHEN v_kind IN ('conversation', 'extendedTextMessage') THEN NULL ELSE v_msg -> v_kind END,
            coalesce(v_msg -> 'buttonsResponseMessage' ->> 'selectedButtonId',
                     v_msg -> 'templateButtonReplyMessage' ->> 'selectedId',
                     v_msg -> 'listResponseMessage' -> 'singleSelectReply' ->> 'selectedRowId'),
            p_webhook_event_id));
    END LOOP;
    RETURN v_counts;
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler._normalise_evolution(jsonb, bigint) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler._normalise_evolution(jsonb, bigint) IS
    'Internal: records the messages (MESSAGES_UPSERT) and statuses (MESSAGES_UPDATE) of an Evolution API webhook and applies its connection updates (CONNECTION_UPDATE) to the channel''s standing (_channel_connection_update; connection: changed, repeat or older); other events, and a connection state it does not know, are kept raw (outcome stored). Returns counts. Raises WH012 for a body of another shape, WH003 for an unknown instance (of a message, a status or a connection update), and what _record_inbound raises.';

COMMIT;
