-- Revert whatsapp_handler:users/erase_user from pg
-- Puts back erase_user and _erase_user_from_brand as v1.0.0 released them
-- (deploy/users/erase_user@v1.0.0.sql): they no longer forget consents and pacing buckets.
BEGIN;
SET LOCAL ROLE whatsapp_handler_owner;

CREATE OR REPLACE FUNCTION whatsapp_handler.erase_user(p_user_id bigint)
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

CREATE OR REPLACE FUNCTION whatsapp_handler._erase_user_from_brand(p_conversation_id bigint)
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
