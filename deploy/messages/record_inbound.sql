-- Deploy whatsapp_handler:messages/record_inbound to pg
-- requires: conversation/converse messages/status users/register_user users/activity outbox/event_envelope
BEGIN;
SET LOCAL ROLE whatsapp_handler_owner;

-- The payload of message.received (docs/events.md), written once for _record_inbound and
-- ingest_batch's fast lane. Inlined where it is called (no SET clause); STABLE, not
-- IMMUTABLE, because jsonb_build_object is only STABLE and would stop the inlining.
CREATE FUNCTION whatsapp_handler._message_received(
    p_message_id bigint, p_channel_id bigint, p_conversation_id bigint, p_provider_message_id text, p_type text,
    p_body text, p_media jsonb, p_reply_id text)
RETURNS jsonb
LANGUAGE sql STABLE
AS $$
    SELECT pg_catalog.jsonb_build_object(
        'message_id', p_message_id, 'channel_id', p_channel_id, 'conversation_id', p_conversation_id,
        'provider_message_id', p_provider_message_id, 'type', p_type, 'body', p_body,
        'media', p_media, 'reply_id', p_reply_id)
$$;
REVOKE ALL ON FUNCTION whatsapp_handler._message_received(bigint, bigint, bigint, text, text, text, jsonb, text) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler._message_received(bigint, bigint, bigint, text, text, text, jsonb, text) IS
    'Internal: the payload of a message.received event for one inbound message. Raises nothing.';

CREATE FUNCTION whatsapp_handler._record_inbound(
    p_channel_id bigint, p_phone text, p_name text, p_provider_message_id text, p_type text,
    p_body text, p_media jsonb, p_reply_id text, p_webhook_event_id bigint)
RETURNS text
LANGUAGE plpgsql
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
DECLARE
    v_id      bigint := nextval('whatsapp_handler.messages_id_seq');
    v_user_id bigint;
    v_created boolean;
    v_conv_id bigint;
    v_state   text;
BEGIN
    -- The claim on (channel, provider id) comes first: a retry or a concurrent duplicate
    -- waits here for the first one's commit, then finds the key taken and does nothing.
    INSERT INTO message_keys (channel_id, provider_message_id, message_id, message_created_at)
    VALUES (p_channel_id, p_provider_message_id, v_id, now())
    ON CONFLICT DO NOTHING;
    IF NOT FOUND THEN
        RETURN 'duplicate';
    END IF;

    -- Most messages come from people already known on this channel: find them directly;
    -- only first contact goes through register_user.
    SELECT u.id, c.id, c.state INTO v_user_id, v_conv_id, v_state
    FROM users u JOIN conversations c ON c.user_id = u.id AND c.channel_id = p_channel_id
    WHERE u.phone = p_phone
    FOR UPDATE OF c;
    v_created := false;
    IF v_conv_id IS NULL THEN
        SELECT r.user_id, r.created INTO v_user_id, v_created FROM register_user(p_phone, p_channel_id, p_name) r;
        SELECT id INTO STRICT v_conv_id FROM conversations
        WHERE user_id = v_user_id AND channel_id = p_channel_id FOR UPDATE;
    END IF;
    INSERT INTO messages (id, created_at, channel_id, user_id, conversation_id, direction, provider_message_id,
                          message_type, body, media, status, webhook_event_id, correlation_id)
    OVERRIDING SYSTEM VALUE
    VALUES (v_id, now(), p_channel_id, v_user_id, v_conv_id, 'inbound', p_provider_message_id,
            p_type, p_body, p_media, 'received', p_webhook_event_id, correlation_id());
    -- The same parts as ingest_batch's fast lane, given one message: the activity touch,
    -- and message.received built and queued as _emit_event would (its type check is for
    -- types that come from callers; this one is constant), one plpgsql call fewer.
    PERFORM _touch_activity(ARRAY[v_user_id]);
    PERFORM _enqueue_outbox(
        ARRAY[_event_envelope('message.received', v_user_id,
                              _message_received(v_id, p_channel_id, v_conv_id, p_provider_message_id, p_type, p_body,
                                                p_media, p_reply_id),
                              correlation_id())],
        ARRAY[_event_group(v_user_id)]);
    -- First contact (state new, from register_user) always goes to the conversation.
    IF NOT coalesce(_converse_ignores(v_state, coalesce(p_reply_id, p_body)), false) THEN
        PERFORM _converse(v_conv_id, p_body, p_reply_id);
    END IF;
    RETURN CASE WHEN v_created THEN 'new_user' ELSE 'new' END;
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler._record_inbound(bigint, text, text, text, text, text, jsonb, text, bigint) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler._record_inbound(bigint, text, text, text, text, text, jsonb, text, bigint) IS
    'Internal: records one inbound message once per (channel, provider id): registers the sender on first contact, stores the message, touches activity, emits message.received and runs the conversation. Returns new, new_user or duplicate. Raises WH001 for a malformed sender phone.';

-- Inlined by its callers (no SET clause), as correlation_id() is; STABLE, not
-- IMMUTABLE, because jsonb_build_object is only STABLE and would stop the inlining.
CREATE FUNCTION whatsapp_handler._tally(p_counts jsonb, p_outcome text)
RETURNS jsonb
LANGUAGE sql STABLE
AS $$
    SELECT p_counts OPERATOR(pg_catalog.||) CASE p_outcome
        WHEN 'new' THEN pg_catalog.jsonb_build_object('messages', (p_counts ->> 'messages')::int + 1)
        WHEN 'new_user' THEN pg_catalog.jsonb_build_object('messages', (p_counts ->> 'messages')::int + 1,
                                                           'registrations', (p_counts ->> 'registrations')::int + 1)
        WHEN 'duplicate' THEN pg_catalog.jsonb_build_object('duplicates', (p_counts ->> 'duplicates')::int + 1)
        WHEN 'status' THEN pg_catalog.jsonb_build_object('statuses', (p_counts ->> 'statuses')::int + 1)
    END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler._tally(jsonb, text) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler._tally(jsonb, text) IS
    'Internal: adds one outcome (new, new_user, duplicate, status) to an ingestion''s counts. Raises nothing.';

COMMIT;
