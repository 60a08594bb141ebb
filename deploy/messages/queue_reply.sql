-- Deploy whatsapp_handler:messages/queue_reply to pg
-- requires: messages/messages conversation/reply_texts users/preferences queue/outbound core/correlation_id core/assert_function
-- A reply of the conversation: recorded as an outbound message and queued for the worker.
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

COMMIT;
