-- Deploy whatsapp_handler:users/register_user to pg
-- requires: users/helpers outbox/event_envelope users/preferences conversation/conversations core/channels
BEGIN;
SET LOCAL ROLE whatsapp_handler_owner;

CREATE FUNCTION whatsapp_handler.register_user(p_phone text, p_channel_id bigint, p_display_name text DEFAULT NULL,
                                               OUT user_id bigint, OUT created boolean)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
BEGIN
    PERFORM _check_phone(p_phone);
    IF NOT EXISTS (SELECT FROM channels WHERE id = p_channel_id AND active) THEN
        RAISE EXCEPTION 'unknown or inactive channel %', coalesce(p_channel_id::text, 'NULL')
            USING ERRCODE = 'WH003', HINT = 'Pass the id of an active channel (whatsapp_handler.channels).';
    END IF;
    IF char_length(p_display_name) > 256 THEN
        RAISE EXCEPTION 'display name longer than 256 characters'
            USING ERRCODE = 'WH008', HINT = 'Shorten the display name to at most 256 characters.';
    END IF;

    -- Two concurrent calls for one phone: the second waits on the first's unique key,
    -- does nothing, and then finds the committed row (a new snapshot per statement).
    INSERT INTO users (phone, display_name) VALUES (p_phone, nullif(p_display_name, ''))
    ON CONFLICT (phone) DO NOTHING
    RETURNING id INTO user_id;
    created := user_id IS NOT NULL;
    IF NOT created THEN
        SELECT u.id INTO user_id FROM users u WHERE u.phone = p_phone;
    ELSE
        INSERT INTO user_preferences (user_id) VALUES (user_id);
        PERFORM _emit_event('user.registered', user_id,
                            jsonb_build_object('phone', p_phone, 'channel_id', p_channel_id,
                                               'display_name', nullif(p_display_name, '')));
    END IF;
    INSERT INTO conversations (user_id, channel_id) VALUES (user_id, p_channel_id)
    ON CONFLICT ON CONSTRAINT conversations_user_channel_unique DO NOTHING;
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler.register_user(text, bigint, text) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler.register_user(text, bigint, text) IS
    'Registers a phone (E.164) met on a channel: creates the user with default preferences and emits user.registered, or finds the existing one; makes sure a conversation exists for the pair. Idempotent, safe under concurrency. Returns (user_id, created). Raises WH001 malformed phone, WH003 unknown or inactive channel, WH008 display name too long.';

COMMIT;
