-- Deploy whatsapp_handler:sending/read_receipts to pg
-- requires: sending/api_keys sending/send providers/carries messages/messages queue/outbound core/correlation_id
-- Blue ticks and the typing indicator: the business marks a person's message as read (and
-- shows that it is typing an answer) through the same queue and worker as its messages, so
-- that they reach the person in order with the answer that follows.
BEGIN;
SET LOCAL ROLE whatsapp_handler_owner;

CREATE FUNCTION whatsapp_handler.mark_read(p_key_hash bytea, p_channel_id bigint, p_message_id text,
                                           p_typing boolean DEFAULT false, p_correlation_id text DEFAULT NULL)
RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
DECLARE
    v_provider provider;
    v_user_id  bigint;
    v_phone    text;
    v_blocked  timestamptz;
    v_queued   jsonb;
    v_kinds    text[];
    v_kind     text;
BEGIN
    IF p_correlation_id IS NOT NULL THEN
        PERFORM set_config('whatsapp_handler.correlation_id', left(p_correlation_id, 128), true);
    END IF;
    PERFORM _api_key_check(p_key_hash, p_channel_id, 'send');
    IF NOT EXISTS (SELECT FROM channels WHERE id = p_channel_id AND active) THEN
        RAISE EXCEPTION 'unknown or inactive channel %', p_channel_id USING ERRCODE = 'WH003',
            HINT = 'Pass the id of an active channel your key may send on.';
    END IF;
    SELECT m.user_id, u.phone, u.blocked_at, c.provider INTO v_user_id, v_phone, v_blocked, v_provider
    FROM message_keys k
    JOIN messages m ON m.id = k.message_id AND m.created_at = k.message_created_at AND m.direction = 'inbound'
    JOIN users u ON u.id = m.user_id
    JOIN channels c ON c.id = k.channel_id
    WHERE k.channel_id = p_channel_id AND k.provider_message_id = p_message_id AND u.phone IS NOT NULL;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'unknown message %', left(coalesce(p_message_id, 'NULL'), 64) USING ERRCODE = 'WH070',
            HINT = 'Mark as read a message the person sent on this channel, by the provider''s id (message.received''s provider_message_id).';
    END IF;
    PERFORM _check_not_blocked(v_blocked);
    PERFORM _check_carries(v_provider, '{"type": "read"}');
    -- Meta marks read and shows typing in one request; Evolution makes them two.
    v_kinds := CASE WHEN p_typing AND v_provider = 'evolution' THEN ARRAY['read', 'typing'] ELSE ARRAY['read'] END;
    FOREACH v_kind IN ARRAY v_kinds LOOP
        v_queued := jsonb_build_object('kind', v_kind, 'channel_id', p_channel_id, 'user_id', v_user_id, 'to', v_phone,
                                       'provider_message_id', p_message_id, 'typing', coalesce(p_typing, false),
                                       'correlation_id', correlation_id());
        PERFORM _enqueue_outbound(v_queued, 'user:' || v_user_id);
    END LOOP;
    RETURN cardinality(v_kinds);
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler.mark_read(bytea, bigint, text, boolean, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION whatsapp_handler.mark_read(bytea, bigint, text, boolean, text) TO whatsapp_handler_relay;
COMMENT ON FUNCTION whatsapp_handler.mark_read(bytea, bigint, text, boolean, text) IS
    'POST /v1/messages/read: queues a read receipt for the person''s message p_message_id (the provider''s id) on the channel, with the typing indicator when p_typing, in line with the messages queued for them; returns how many requests were queued (Evolution sends the indicator apart). Raises WH060/WH061 for the key (scope send), WH070 no such inbound message on the channel, WH003 an inactive channel, WH004 the person is blocked, WH063 on a Twilio channel.';

COMMIT;
