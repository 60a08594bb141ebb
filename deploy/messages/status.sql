-- Deploy whatsapp_handler:messages/status to pg
-- requires: users/register_user users/activity outbox/event_envelope messages/messages messages/status_events conversation/reply_texts queue/outbound
-- Internal building blocks of ingestion: an inbound message, a delivery status, a reply.
BEGIN;
SET LOCAL ROLE whatsapp_handler_owner;

CREATE FUNCTION whatsapp_handler._queue_reply(p_conversation_id bigint, p_key text, p_to text DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
DECLARE
    v_conv conversations;
    v_to   text;
    v_lang text;
    v_body text;
    v_id   bigint := nextval('whatsapp_handler.messages_id_seq');
BEGIN
    SELECT * INTO STRICT v_conv FROM conversations WHERE id = p_conversation_id;
    SELECT coalesce(p_to, u.phone), coalesce(p.language, 'en-GB') INTO v_to, v_lang
    FROM users u LEFT JOIN user_preferences p ON p.user_id = u.id WHERE u.id = v_conv.user_id;
    v_body := _reply_text(p_key, v_lang);
    -- The outbound row exists from the start (status queued) so that the worker can
    -- record the provider's id and statuses against it.
    INSERT INTO messages (id, created_at, channel_id, user_id, conversation_id, direction, message_type, body, status, correlation_id)
    OVERRIDING SYSTEM VALUE
    VALUES (v_id, now(), v_conv.channel_id, v_conv.user_id, v_conv.id, 'outbound', 'text', v_body, 'queued', correlation_id());
    PERFORM _enqueue_outbound(
        jsonb_build_object('kind', 'text', 'message_id', v_id, 'message_created_at', now(), 'channel_id', v_conv.channel_id,
                           'user_id', v_conv.user_id, 'to', v_to, 'body', v_body, 'reply_key', p_key,
                           'correlation_id', correlation_id()),
        'user:' || v_conv.user_id);
    RETURN v_id;
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler._queue_reply(bigint, text, text) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler._queue_reply(bigint, text, text) IS
    'Internal: queues the reply text p_key (in the user''s language) on pgmq queue outbound and records it as an outbound message (status queued); returns the message id. p_to overrides the address (used after an erasure). Raises WH011 for an unknown key.';

CREATE FUNCTION whatsapp_handler._record_status(p_channel_id bigint, p_provider_message_id text, p_status text,
                                                p_occurred_at timestamptz, p_errors jsonb, p_webhook_event_id bigint)
RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
DECLARE
    v_key      message_keys;
    v_status   message_status := p_status::message_status;
    v_previous message_status;
    v_user_id  bigint;
BEGIN
    SELECT * INTO v_key FROM message_keys WHERE channel_id = p_channel_id AND provider_message_id = p_provider_message_id;
    -- Every report is kept as reported, even late or repeated ones.
    INSERT INTO message_status_events (channel_id, provider_message_id, message_id, status, occurred_at, errors, webhook_event_id)
    VALUES (p_channel_id, p_provider_message_id, v_key.message_id, v_status, coalesce(p_occurred_at, now()),
            nullif(p_errors, 'null'), p_webhook_event_id);
    IF v_key.message_id IS NULL THEN
        RETURN false;  -- not sent by us yet, or not by us: the worker joins it later
    END IF;
    -- Statuses arrive out of order: only a later one moves the message on, so a late
    -- "sent" never overwrites "read".
    SELECT status INTO v_previous FROM messages
    WHERE id = v_key.message_id AND created_at = v_key.message_created_at FOR UPDATE;
    UPDATE messages SET status = v_status, status_at = coalesce(p_occurred_at, now())
    WHERE id = v_key.message_id AND created_at = v_key.message_created_at AND direction = 'outbound' AND status < v_status
    RETURNING user_id INTO v_user_id;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    PERFORM _emit_event('message.status_changed', v_user_id,
        jsonb_build_object('message_id', v_key.message_id, 'channel_id', p_channel_id,
                           'provider_message_id', p_provider_message_id, 'status', v_status,
                           'previous_status', v_previous, 'occurred_at', p_occurred_at, 'errors', p_errors));
    RETURN true;
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler._record_status(bigint, text, text, timestamptz, jsonb, bigint) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler._record_status(bigint, text, text, timestamptz, jsonb, bigint) IS
    'Internal: records a delivery status as reported and moves the message''s status forward when it is later in the order queued < sent < delivered < read < failed (emitting message.status_changed); returns whether it moved. Raises 22P02 for a status that is not a message_status.';

COMMIT;
