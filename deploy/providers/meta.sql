-- Deploy whatsapp_handler:providers/meta to pg
-- requires: messages/record_inbound messages/status core/channels templates/status_updates channels/standing
-- Meta Cloud API: {"object": "whatsapp_business_account", "entry": [{"id": <WABA id>,
-- "changes": [{"field": "messages", "value": {"metadata": {"phone_number_id"}, "contacts",
-- "messages", "statuses"}}]}]}, several entries and changes per body.
-- Reworked after v1.0.0 (only _normalise_meta; _meta_channel_ref is as released): a
-- status keeps its pricing and conversation (messages/status_pricing); each "messages"
-- change teaches which account (entry.id) its number belongs to, and the account's
-- template webhooks (message_template_status_update, template_category_update,
-- message_template_quality_update) move the registry of that account's channels
-- (templates/status_updates); a number's quality update and the account's account_update
-- move the standing of its channels (channels/standing; a flagged number pauses its
-- campaigns, campaigns/standing). Other account-level fields are still kept raw only.
BEGIN;
SET LOCAL ROLE whatsapp_handler_owner;

CREATE OR REPLACE FUNCTION whatsapp_handler._normalise_meta(p_payload jsonb, p_webhook_event_id bigint)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
DECLARE
    v_counts  jsonb := '{"messages": 0, "duplicates": 0, "statuses": 0, "registrations": 0}';
    v_change  record;
    v_value   jsonb;
    v_channel bigint;
    v_account text;
    v_found   integer;
    v_pricing jsonb;
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
    FOR v_change IN
        SELECT e ->> 'id' AS account_id, e ->> 'time' AS at, c ->> 'field' AS field, c -> 'value' AS value
        FROM jsonb_array_elements(p_payload -> 'entry') e, jsonb_array_elements(e -> 'changes') c
        WHERE c ->> 'field' IN ('messages', 'message_template_status_update', 'template_category_update',
                                'message_template_quality_update', 'phone_number_quality_update', 'account_update')
    LOOP
        v_value := v_change.value;
        IF v_change.field IN ('phone_number_quality_update', 'account_update') THEN
            -- The standing of the number's or the account's channels (channels/standing): kept
            -- raw only when no channel has it.
            IF v_change.field = 'account_update' THEN
                v_found := _meta_account_update(v_change.account_id, v_value, _meta_entry_time(v_change.at));
                v_counts := v_counts || jsonb_build_object(
                    'account_updates', coalesce((v_counts ->> 'account_updates')::int, 0) + v_found);
            ELSE
                v_found := _meta_quality_update(v_change.account_id, v_value, _meta_entry_time(v_change.at));
                v_counts := v_counts || jsonb_build_object(
                    'quality_updates', coalesce((v_counts ->> 'quality_updates')::int, 0) + v_found);
            END IF;
            v_any := v_any OR v_found > 0;
            CONTINUE;
        ELSIF v_change.field <> 'messages' THEN
            -- An account's template: its rows on the account's channels (templates/status_updates).
            -- One that finds none leaves the body "stored" (kept raw) unless something else
            -- in it was processed.
            v_found := _meta_template_update(v_change.account_id, v_change.field, v_value);
            v_counts := v_counts || jsonb_build_object(
                'templates', coalesce((v_counts ->> 'templates')::int, 0) + coalesce(v_found, 0),
                'templates_unmatched', coalesce((v_counts ->> 'templates_unmatched')::int, 0) + (v_found IS NOT DISTINCT FROM 0)::int);
            v_any := v_any OR v_found > 0;
            CONTINUE;
        END IF;
        v_any := true;
        SELECT c.id, a.account_id INTO v_channel, v_account
        FROM channels c LEFT JOIN meta_channel_accounts a ON a.channel_id = c.id
        WHERE c.provider = 'meta' AND c.provider_ref = _meta_channel_ref(v_value);
        IF v_channel IS NULL THEN
            RAISE EXCEPTION 'no channel for Meta phone_number_id %', _meta_channel_ref(v_value)
                USING ERRCODE = 'WH003', HINT = 'Add the channel (add_channel) and re-drive the dead letter.';
        END IF;
        -- Read above with the channel, written only when new or changed: the hot path stays a read.
        IF v_account IS DISTINCT FROM v_change.account_id THEN
            PERFORM _learn_meta_account(v_channel, v_change.account_id);
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
            -- Sent and delivered statuses say what the message costs: pricing (billable,
            -- pricing_model, category, type) and, under conversation-based pricing, the
            -- conversation it opened or fell in; kept together as its pricing.
            v_pricing := CASE WHEN jsonb_typeof(v_status -> 'pricing') = 'object' OR jsonb_typeof(v_status -> 'conversation') = 'object'
                THEN coalesce(CASE WHEN jsonb_typeof(v_status -> 'pricing') = 'object' THEN v_status -> 'pricing' END, '{}')
                     || CASE WHEN jsonb_typeof(v_status -> 'conversation') = 'object'
                             THEN jsonb_build_object('conversation', v_status -> 'conversation') ELSE '{}' END
            END;
            PERFORM _record_status(v_channel, v_status ->> 'id', v_status ->> 'status',
                                   to_timestamp((v_status ->> 'timestamp')::double precision),
                                   v_status -> 'errors', p_webhook_event_id, v_pricing);
            v_counts := _tally(v_counts, 'status');
        END LOOP;
    END LOOP;
    -- Other account-level fields are kept raw only.
    RETURN CASE WHEN v_any THEN v_counts ELSE v_counts || '{"outcome": "stored"}' END;
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler._normalise_meta(jsonb, bigint) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler._normalise_meta(jsonb, bigint) IS
    'Internal: records the messages and statuses (with their errors and pricing) of a Meta webhook body, learns the account (entry.id) of each number, and applies the account''s template status, category and quality updates to the registry (_meta_template_update) and its numbers'' quality updates and its account updates to their channels'' standing (_meta_quality_update, _meta_account_update: quality_updates and account_updates count the channels found); returns counts (templates: the registry rows the template updates found; templates_unmatched: the updates that found none, when the body had one), with outcome stored when nothing was processed (other account-level events, a template, quality or account update that found nothing: kept raw only). Raises WH012 for a body of another shape, WH003 for an unknown phone_number_id, and what _record_inbound raises.';

COMMIT;
