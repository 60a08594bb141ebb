-- Deploy whatsapp_handler:users/erase_user to pg
-- requires: users/helpers outbox/event_envelope messages/messages ingest/webhook_events otp/challenges users/preferences queue/outbound queue/outbox queue/dead_letters queue/groups
BEGIN;
SET LOCAL ROLE whatsapp_handler_owner;

-- The strings of a raw webhook that can be a person's number: erasure looks them up in
-- every form a provider writes one (447700900123, +447700900123, whatsapp:+447700900123,
-- 447700900123@s.whatsapp.net). A body the normaliser understood (processed) is read
-- where its provider puts numbers: Meta's messages, contacts and statuses (from, wa_id,
-- recipient_id), Twilio's fields (From, To, WaId). Any other body (failed or
-- dead-lettered; stored, such as account-level events) and every Evolution body is read
-- whole. The outcome is an argument so that marking an event failed or stored (an
-- UPDATE) indexes it again, read whole. One expression of C functions, inlined: a
-- query (plpgsql, or a SQL function that is not inlined) cost ingestion 40 µs and more.
CREATE FUNCTION whatsapp_handler._webhook_strings(p_provider whatsapp_handler.provider, p_outcome text, p_payload jsonb)
RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT CASE
        WHEN p_outcome OPERATOR(pg_catalog.=) 'processed' AND p_provider OPERATOR(pg_catalog.=) 'meta'
            THEN pg_catalog.jsonb_path_query_array(p_payload,
                     'lax $.entry[*].changes[*].value.*[*].* ? (@.type() == "string")')
        WHEN p_outcome OPERATOR(pg_catalog.=) 'processed' AND p_provider OPERATOR(pg_catalog.=) 'twilio'
            THEN pg_catalog.jsonb_path_query_array(p_payload, 'lax $.* ? (@.type() == "string")')
        ELSE pg_catalog.jsonb_path_query_array(p_payload, 'strict $.** ? (@.type() == "string")')
    END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler._webhook_strings(whatsapp_handler.provider, text, jsonb) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler._webhook_strings(whatsapp_handler.provider, text, jsonb) IS
    'Internal: the strings of a webhook body that can name a person, as a JSON array: where the provider puts numbers in a processed Meta or Twilio body, every string of any other. The key of webhook_events_phones_idx. Raises nothing.';

-- The forms a provider writes a person's number in, for a lookup in that index.
CREATE FUNCTION whatsapp_handler._phone_forms(p_phone text)
RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT ARRAY[d, '+' OPERATOR(pg_catalog.||) d, 'whatsapp:+' OPERATOR(pg_catalog.||) d,
                 'whatsapp:' OPERATOR(pg_catalog.||) d, d OPERATOR(pg_catalog.||) '@s.whatsapp.net',
                 d OPERATOR(pg_catalog.||) '@c.us']
    FROM (SELECT pg_catalog.ltrim(p_phone, '+') AS d) AS x
$$;
REVOKE ALL ON FUNCTION whatsapp_handler._phone_forms(text) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler._phone_forms(text) IS
    'Internal: an E.164 number in the forms providers write it (digits, +digits, whatsapp:+digits, whatsapp:digits, digits@s.whatsapp.net, digits@c.us). Raises nothing.';

-- Erasure finds every raw webhook naming a person through this index, statuses,
-- retried copies and dead letters included, without reading the table. jsonb_ops keeps
-- long strings as hashes; fastupdate off: a few keys per webhook, and no pending list
-- for one unlucky insert to flush.
CREATE INDEX webhook_events_phones_idx ON whatsapp_handler.webhook_events
    USING gin (whatsapp_handler._webhook_strings(provider, outcome, payload) jsonb_ops) WITH (fastupdate = off);
-- Bodies kept only as bytes (not JSON at all) are few: erasure searches them all.
CREATE INDEX webhook_events_unparsed_idx ON whatsapp_handler.webhook_events (received_at) WHERE payload IS NULL;

CREATE FUNCTION whatsapp_handler._erase_raw_webhooks(p_phone text, p_channel_ids bigint[])
RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
DECLARE
    v_digits text := ltrim(p_phone, '+');
    v_forms  text[] := _phone_forms(p_phone);
    v_events text[];
BEGIN
    WITH gone AS (
        DELETE FROM webhook_events w
        WHERE (_webhook_strings(w.provider, w.outcome, w.payload) ?| v_forms
               OR (w.payload IS NULL AND position(convert_to(v_digits, 'UTF8') IN w.raw) > 0))
          AND (p_channel_ids IS NULL OR w.channel_id = ANY (p_channel_ids))
        RETURNING w.id, w.channel_id, w.payload
    ), reported AS (
        -- The statuses these bodies reported keep the provider's errors, which may quote
        -- the number (a status about a message that is not ours has no message to follow).
        UPDATE message_status_events s SET errors = NULL
        FROM (SELECT DISTINCT g.channel_id, k.id #>> '{}' AS provider_message_id
              FROM gone g
              CROSS JOIN (VALUES ('lax $.entry[*].changes[*].value.statuses[*].id'::jsonpath),
                                 ('lax $.MessageSid'), ('lax $.data.keyId'), ('lax $.data.key.id')) AS q (path)
              CROSS JOIN LATERAL jsonb_path_query(g.payload, q.path) AS k (id)
              WHERE g.channel_id IS NOT NULL) r
        WHERE s.channel_id = r.channel_id AND s.provider_message_id = r.provider_message_id AND s.errors IS NOT NULL
    )
    SELECT array_agg(id::text) INTO v_events FROM gone;
    -- Their dead letters point at nothing now (and a re-drive would find nothing). The
    -- inbound dead-letter queue (queue/inbound_dlq) comes later in the plan than this change.
    IF v_events IS NOT NULL AND to_regprocedure('whatsapp_handler._purge_inbound_letters(text[])') IS NOT NULL THEN
        PERFORM _purge_inbound_letters(v_events);
    END IF;
    RETURN coalesce(cardinality(v_events), 0);
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler._erase_raw_webhooks(text, bigint[]) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler._erase_raw_webhooks(text, bigint[]) IS
    'Internal: deletes every raw webhook naming the phone in a provider''s form (webhook_events_phones_idx; bodies kept only as bytes are searched for its digits), of the given channels or of all when NULL, the inbound dead letters pointing at them, and the provider errors of the statuses they reported; returns how many webhooks went. Raises nothing.';

-- Events not yet consumed keep their place (consumers see user.erased after them) but
-- lose what names the person.
CREATE FUNCTION whatsapp_handler._scrub_pending_events(p_user_id bigint, p_channel_ids text[])
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
BEGIN
    -- The fields of an event payload that name a person (queue/groups redacts them).
    PERFORM _redact_group_events('user:' || p_user_id, p_channel_ids,
                                 ARRAY['phone', 'display_name', 'body', 'media', 'errors']);
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler._scrub_pending_events(bigint, text[]) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler._scrub_pending_events(bigint, text[]) IS
    'Internal: removes phone, display_name, body, media and errors from the payloads of the user''s events still waiting on the outbox (of the given channels, or all when NULL) and marks them erased: true. Raises nothing.';

CREATE FUNCTION whatsapp_handler.erase_user(p_user_id bigint)
RETURNS boolean
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
DECLARE
    v_user users;
BEGIN
    SELECT * INTO v_user FROM users WHERE id = p_user_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'unknown user %', p_user_id USING ERRCODE = 'WH002', HINT = 'Check the user id.';
    END IF;
    IF v_user.erased_at IS NOT NULL THEN
        RETURN false;
    END IF;

    -- Raw bodies carry the phone number and texts: every one naming the phone goes
    -- (inbound, statuses, retried copies, dead-lettered, any event), then any left
    -- behind this user's messages.
    PERFORM _erase_raw_webhooks(v_user.phone, NULL);
    DELETE FROM webhook_events w USING messages m
    WHERE m.user_id = p_user_id AND w.id = m.webhook_event_id;
    -- Messages stay as anonymous history (when, which channel, which type, which status).
    UPDATE messages SET body = NULL, media = NULL WHERE user_id = p_user_id AND (body IS NOT NULL OR media IS NOT NULL);
    UPDATE message_status_events s SET errors = NULL
    FROM message_keys k JOIN messages m ON m.id = k.message_id AND m.created_at = k.message_created_at
    WHERE m.user_id = p_user_id AND s.channel_id = k.channel_id AND s.provider_message_id = k.provider_message_id
      AND s.errors IS NOT NULL;
    DELETE FROM otp_challenges WHERE user_id = p_user_id;
    DELETE FROM user_preferences WHERE user_id = p_user_id;
    UPDATE conversations SET context = '{}', updated_at = now() WHERE user_id = p_user_id;
    -- Nothing more is sent to them, and events already consumed (archived) about them go.
    -- Dead letters about them hold their phone and texts too (outbound) or events about
    -- them: every queue and archive of their group (queue/groups).
    PERFORM _purge_group('user:' || p_user_id);
    PERFORM _scrub_pending_events(p_user_id, NULL);

    UPDATE users SET phone = NULL, display_name = NULL, blocked_reason = NULL,
                     blocked_at = NULL, erased_at = now(), updated_at = now()
    WHERE id = p_user_id;
    PERFORM _emit_event('user.erased', p_user_id);
    RETURN true;
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler.erase_user(bigint) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler.erase_user(bigint) IS
    'GDPR erasure of a person, for DBAs and the inactivity job: removes the phone, name, preferences, OTP challenges, message bodies and media, every raw webhook naming the phone (inbound, statuses, retried copies, dead-lettered, any event) and their inbound dead letters, queued, archived and dead-lettered outbound messages, archived and dead-lettered events about the user, and the personal fields of their events not yet consumed; keeps anonymous history (message times, types, statuses) and emits user.erased. Returns false when already erased. Raises WH002 unknown user.';

-- What one brand holds about a person who also speaks to other brands: asked for in a
-- conversation, erasure reaches only the brand of the channel it was asked on (docs/security.md).
CREATE FUNCTION whatsapp_handler._erase_user_from_brand(p_conversation_id bigint)
RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
DECLARE
    v_conv     conversations;
    v_user     users;
    v_brand    text;
    v_channels bigint[];
    v_keys     text[];
BEGIN
    SELECT * INTO STRICT v_conv FROM conversations WHERE id = p_conversation_id;
    SELECT * INTO v_user FROM users WHERE id = v_conv.user_id FOR UPDATE;
    IF v_user.erased_at IS NOT NULL THEN
        RETURN false;
    END IF;
    v_brand := _brand(v_conv.channel_id);
    SELECT array_agg(id ORDER BY id) INTO STRICT v_channels FROM channels WHERE _brand(id) = v_brand;
    v_keys := v_channels::text[];

    PERFORM _erase_raw_webhooks(v_user.phone, v_channels);
    DELETE FROM webhook_events w USING messages m
    WHERE m.user_id = v_user.id AND m.channel_id = ANY (v_channels) AND w.id = m.webhook_event_id;
    UPDATE message_status_events s SET errors = NULL
    FROM message_keys k JOIN messages m ON m.id = k.message_id AND m.created_at = k.message_created_at
    WHERE m.user_id = v_user.id AND m.channel_id = ANY (v_channels)
      AND s.channel_id = k.channel_id AND s.provider_message_id = k.provider_message_id AND s.errors IS NOT NULL;
    -- The brand's messages stay as anonymous history, no longer the person's.
    UPDATE messages SET body = NULL, media = NULL, user_id = NULL, conversation_id = NULL
    WHERE user_id = v_user.id AND channel_id = ANY (v_channels);
    DELETE FROM otp_challenges WHERE user_id = v_user.id AND channel_id = ANY (v_channels);
    -- The group's queued, archived and dead-lettered messages of the brand's channels.
    PERFORM _purge_group('user:' || v_user.id, v_keys);
    PERFORM _scrub_pending_events(v_user.id, v_keys);
    -- The brand no longer knows them: its other conversations go, and the one that asked
    -- stays closed, without terms or context, for the confirmation (the next message
    -- starts it again as new).
    DELETE FROM conversations WHERE user_id = v_user.id AND channel_id = ANY (v_channels) AND id <> v_conv.id;
    UPDATE conversations SET state = 'closed', context = '{}', terms_version = NULL, terms_accepted_at = NULL,
                             state_changed_at = now(), updated_at = now()
    WHERE id = v_conv.id;
    PERFORM _emit_event('user.brand_erased', v_user.id,
                        jsonb_build_object('brand', v_brand, 'channel_ids', to_jsonb(v_channels)));
    RETURN true;
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler._erase_user_from_brand(bigint) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler._erase_user_from_brand(bigint) IS
    'Internal: erases what the brand of a conversation''s channel holds about its user (raw webhooks of the brand''s channels naming the phone and their dead letters, message bodies, media and the link of its messages to the person, OTP challenges, queued, archived and dead-lettered messages and events of those channels, the personal fields of pending events about them, the brand''s other conversations), leaves the conversation closed without terms, and emits user.brand_erased; the person and what other brands hold stay. Returns false for an erased user. Raises nothing of its own.';

COMMIT;
