-- Deploy whatsapp_handler:providers/evolution to pg
-- requires: messages/record_inbound messages/status core/channels
-- Evolution API: {"event": "messages.upsert" | "MESSAGES_UPSERT" | ..., "instance",
-- "data", "apikey"}. Messages and their status updates are recorded; other events
-- (CONNECTION_UPDATE, QRCODE_UPDATED, ...) are kept raw only.
BEGIN;
SET LOCAL ROLE whatsapp_handler_owner;

-- Routing: a body names its instance, the channel's provider_ref. A SQL expression
-- without a search_path, so that it is inlined where it is called.
CREATE FUNCTION whatsapp_handler._evolution_channel_ref(p_payload jsonb)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT p_payload OPERATOR(pg_catalog.->>) 'instance'
$$;
REVOKE ALL ON FUNCTION whatsapp_handler._evolution_channel_ref(jsonb) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler._evolution_channel_ref(jsonb) IS
    'Internal: the channel reference (provider_ref) an Evolution API body is for, its instance name. Raises nothing.';

CREATE FUNCTION whatsapp_handler._normalise_evolution(p_payload jsonb, p_webhook_event_id bigint)
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
BEGIN
    IF jsonb_typeof(p_payload) <> 'object' OR v_event IS NULL THEN
        RAISE EXCEPTION 'not an Evolution API webhook' USING ERRCODE = 'WH012', HINT = 'Expected {"event", "instance", "data"}.';
    END IF;
    IF v_event NOT IN ('MESSAGES_UPSERT', 'MESSAGES_UPDATE') THEN
        RETURN v_counts || '{"outcome": "stored"}';
    END IF;
    SELECT id INTO v_channel FROM channels WHERE provider = 'evolution' AND provider_ref = _evolution_channel_ref(p_payload);
    IF v_channel IS NULL THEN
        RAISE EXCEPTION 'no channel for Evolution instance %', _evolution_channel_ref(p_payload)
            USING ERRCODE = 'WH003', HINT = 'Add the channel (add_channel) and re-drive the dead letter.';
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
    'Internal: records the messages (MESSAGES_UPSERT) and statuses (MESSAGES_UPDATE) of an Evolution API webhook; other events are kept raw (outcome stored). Returns counts. Raises WH012 for a body of another shape, WH003 for an unknown instance, and what _record_inbound raises.';

COMMIT;
