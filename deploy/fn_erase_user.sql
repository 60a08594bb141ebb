-- Deploy whatsapp_handler:fn_erase_user to pg
-- requires: fn_user_helpers fn_emit_event table_messages table_webhook_events table_otp_challenges table_user_preferences queue_outbound queue_outbox queue_dead_letters
BEGIN;

-- Erasure finds a user's archived messages and events by their group header; the
-- archives hold days of traffic. As the deployer: an index needs CREATE on schema pgmq.
CREATE INDEX a_outbound_group_idx ON pgmq.a_outbound ((headers ->> 'x-pgmq-group'));
CREATE INDEX a_outbox_group_idx ON pgmq.a_outbox ((headers ->> 'x-pgmq-group'));
SET LOCAL ROLE whatsapp_handler_owner;

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

    -- Raw bodies carry the phone number and texts: drop the ones behind this user's messages.
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
    DELETE FROM pgmq.q_outbound WHERE headers ->> 'x-pgmq-group' = 'user:' || p_user_id;
    DELETE FROM pgmq.a_outbound WHERE headers ->> 'x-pgmq-group' = 'user:' || p_user_id;
    DELETE FROM pgmq.a_outbox WHERE headers ->> 'x-pgmq-group' = 'user:' || p_user_id;
    -- Dead letters about them hold their phone and texts too (outbound) or events about them.
    DELETE FROM pgmq.q_outbound_dlq WHERE headers ->> 'x-pgmq-group' = 'user:' || p_user_id;
    DELETE FROM pgmq.q_outbox_dlq WHERE headers ->> 'x-pgmq-group' = 'user:' || p_user_id;

    UPDATE users SET phone = NULL, display_name = NULL, blocked_reason = NULL,
                     blocked_at = NULL, erased_at = now(), updated_at = now()
    WHERE id = p_user_id;
    PERFORM _emit_event('user.erased', p_user_id);
    RETURN true;
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler.erase_user(bigint) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler.erase_user(bigint) IS
    'GDPR erasure: removes the phone, name, preferences, OTP challenges, message bodies and media, the raw webhooks behind the user''s messages, queued and dead-lettered outbound messages, archived and dead-lettered events about the user; keeps anonymous history (message times, types, statuses) and emits user.erased. Returns false when already erased. Raises WH002 unknown user.';

COMMIT;
