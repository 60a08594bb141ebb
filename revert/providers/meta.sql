-- Revert whatsapp_handler:providers/meta from pg
-- Puts back the functions as v1.0.0 released them (deploy/providers/meta@v1.0.0.sql):
-- template webhooks are kept raw only again, statuses without their pricing.
-- requires: messages/record_inbound messages/status core/channels
-- Meta Cloud API: {"object": "whatsapp_business_account", "entry": [{"changes":
-- [{"field": "messages", "value": {"metadata": {"phone_number_id"}, "contacts",
-- "messages", "statuses"}}]}]}, several entries and changes per body.
BEGIN;
SET LOCAL ROLE whatsapp_handler_owner;

-- Routing: each change of a body names its business number by phone_number_id (a body's
-- webhook event takes its first change's; _channel_ref in ingest/ingest). A SQL
-- expression without a search_path, so that it is inlined where it is called.
CREATE OR REPLACE FUNCTION whatsapp_handler._meta_channel_ref(p_value jsonb)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT p_value OPERATOR(pg_catalog.#>>) '{metadata,phone_number_id}'
$$;
REVOKE ALL ON FUNCTION whatsapp_handler._meta_channel_ref(jsonb) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler._meta_channel_ref(jsonb) IS
    'Internal: the channel reference (provider_ref) a Meta change''s value is for, its metadata.phone_number_id. Raises nothing.';

CREATE OR REPLACE FUNCTION whatsapp_handler._normalise_meta(p_payload jsonb, p_webhook_event_id bigint)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
DECLARE
    v_counts  jsonb := '{"messages": 0, "duplicates": 0, "statuses": 0, "registrations": 0}';
    v_value   jsonb;
    v_channel bigint;
    v_msg     jsonb;
    v_status  jsonb;
    v_type    text;
    v_content jsonb;
    v_result  text;
    v_any     boolean := false;
BEGIN
    IF p_payload ->> 'object' IS DISTINCT FROM 'whatsapp_business_account' OR jsonb_typeof(p_payload -> 'entry') <> 'array' THEN
        RAISE EXCEPTION 'not a WhatsApp Business Account webhook' USING ERRCODE = 'WH012',
            HINT = 'Expected {"object": "whatsapp_business_account", "entry": [...]}.';
    END IF;
    FOR v_value IN
        SELECT c -> 'value' FROM jsonb_array_elements(p_payload -> 'entry') e, jsonb_array_elements(e -> 'changes') c
        WHERE c ->> 'field' = 'messages'
    LOOP
        v_any := true;
        SELECT id INTO v_channel FROM channels WHERE provider = 'meta' AND provider_ref = _meta_channel_ref(v_value);
        IF v_channel IS NULL THEN
            RAISE EXCEPTION 'no channel for Meta phone_number_id %', _meta_channel_ref(v_value)
                USING ERRCODE = 'WH003', HINT = 'Add the channel (add_channel) and re-drive the dead letter.';
        END IF;

        FOR v_msg IN SELECT jsonb_array_elements(coalesce(v_value -> 'messages', '[]')) LOOP
            v_type := coalesce(v_msg ->> 'type', 'unknown');
            v_content := v_msg -> v_type;
            v_result := _record_inbound(
                v_channel,
                '+' || (v_msg ->> 'from'),
                (SELECT c -> 'profile' ->> 'name' FROM jsonb_array_elements(coalesce(v_value -> 'contacts', '[]')) c
                 WHERE c ->> 'wa_id' = v_msg ->> 'from' LIMIT 1),
                v_msg ->> 'id',
                CASE WHEN v_type ~ '^[a-z_]{1,32}$' THEN v_type ELSE 'unknown' END,
                CASE v_type
                    WHEN 'text' THEN v_content ->> 'body'
                    WHEN 'interactive' THEN coalesce(v_content -> 'button_reply' ->> 'title', v_content -> 'list_reply' ->> 'title')
                    WHEN 'button' THEN v_content ->> 'text'
                    WHEN 'location' THEN concat_ws(', ', v_content ->> 'name', v_content ->> 'address')
                    ELSE v_content ->> 'caption'
                END,
                -- Media ids, locations, reactions, errors of unsupported types: kept as sent.
                CASE WHEN v_type = 'text' THEN NULL ELSE coalesce(v_content, v_msg -> 'errors') END,
                CASE v_type
                    WHEN 'interactive' THEN coalesce(v_content -> 'button_reply' ->> 'id', v_content -> 'list_reply' ->> 'id')
                    WHEN 'button' THEN v_content ->> 'payload'
                END,
                p_webhook_event_id);
            v_counts := _tally(v_counts, v_result);
        END LOOP;

        FOR v_status IN SELECT jsonb_array_elements(coalesce(v_value -> 'statuses', '[]')) LOOP
            CONTINUE WHEN v_status ->> 'status' NOT IN ('sent', 'delivered', 'read', 'failed');
            PERFORM _record_status(v_channel, v_status ->> 'id', v_status ->> 'status',
                                   to_timestamp((v_status ->> 'timestamp')::double precision),
                                   v_status -> 'errors', p_webhook_event_id);
            v_counts := _tally(v_counts, 'status');
        END LOOP;
    END LOOP;
    -- Account-level fields (template status, account updates) are kept raw only.
    RETURN CASE WHEN v_any THEN v_counts ELSE v_counts || '{"outcome": "stored"}' END;
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler._normalise_meta(jsonb, bigint) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler._normalise_meta(jsonb, bigint) IS
    'Internal: records the messages and statuses of a Meta webhook body; returns counts, with outcome stored when no change is of field messages (account-level events are kept raw only). Raises WH012 for a body of another shape, WH003 for an unknown phone_number_id, and what _record_inbound raises.';

COMMIT;
