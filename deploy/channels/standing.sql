-- Deploy whatsapp_handler:channels/standing to pg
-- requires: core/channels core/roles outbox/event_envelope templates/status_updates
-- What each channel's provider last said about the channel itself, kept in one row per
-- channel (channel_standing):
--  * Evolution: the instance's connection to WhatsApp (CONNECTION_UPDATE: open, connecting,
--    close, with Evolution's statusReason), written by the reworked providers/evolution;
--  * Meta: the number's quality and messaging limit (phone_number_quality_update) and the
--    account's last event (account_update: a ban, a violation, a restriction), written by
--    providers/meta.
-- Each real change queues an event about the channel (channel.connection_changed,
-- channel.quality_changed, channel.account_changed); a repeat of the same state queues
-- nothing, and an update older than the one kept (by the provider's own time) changes
-- nothing. A channel is down while its Evolution instance is not open or its Meta account is
-- disabled or deleted (_channel_connected, the one rule /metrics, the alert and doctor read).
-- What a channel's campaigns do about a flagged number or a channel down is the campaigns'
-- rule (campaigns/standing, triggers on this table).
BEGIN;
SET LOCAL ROLE whatsapp_handler_owner;

CREATE TABLE whatsapp_handler.channel_standing (
    channel_id            bigint PRIMARY KEY REFERENCES whatsapp_handler.channels (id) ON DELETE CASCADE,
    connection            text CONSTRAINT channel_standing_connection_known
                              CHECK (connection IN ('open', 'connecting', 'close')),
    connection_reason     integer,
    connection_at         timestamptz,
    connection_changed_at timestamptz,
    quality_event         text CONSTRAINT channel_standing_quality_event_shape CHECK (quality_event ~ '^[A-Z][A-Z_]{0,39}$'),
    current_limit         text CONSTRAINT channel_standing_current_limit_shape CHECK (current_limit ~ '^[A-Z0-9_]{1,40}$'),
    quality_at            timestamptz,
    quality_changed_at    timestamptz,
    account_event         text CONSTRAINT channel_standing_account_event_shape CHECK (account_event ~ '^[A-Z][A-Z_]{0,63}$'),
    account_info          jsonb,
    account_disabled      boolean NOT NULL DEFAULT false,
    account_at            timestamptz,
    account_changed_at    timestamptz,
    CONSTRAINT channel_standing_connection_whole
        CHECK ((connection IS NULL) = (connection_changed_at IS NULL)),
    CONSTRAINT channel_standing_quality_whole
        CHECK ((quality_event IS NULL) = (quality_changed_at IS NULL)),
    CONSTRAINT channel_standing_account_whole
        CHECK ((account_event IS NULL) = (account_changed_at IS NULL))
);
COMMENT ON TABLE whatsapp_handler.channel_standing IS 'Each channel''s standing as its provider last told it (channels/standing): the Evolution instance''s connection (CONNECTION_UPDATE), the Meta number''s quality and messaging limit (phone_number_quality_update) and the Meta account''s last event (account_update). One row per channel that has been told anything.';
COMMENT ON COLUMN whatsapp_handler.channel_standing.connection IS 'Evolution: the instance''s connection to WhatsApp, open, connecting or close (data.state of its last CONNECTION_UPDATE); NULL before the first.';
COMMENT ON COLUMN whatsapp_handler.channel_standing.connection_reason IS 'Evolution''s statusReason with that state (Baileys'' disconnect code: 200 none, 401 logged out, 408 lost, 428 closed, 440 replaced, 515 restart, ...).';
COMMENT ON COLUMN whatsapp_handler.channel_standing.connection_at IS 'The update''s own time (the body''s date_time, Evolution''s clock), to refuse an older update arriving late; NULL when the body had none.';
COMMENT ON COLUMN whatsapp_handler.channel_standing.connection_changed_at IS 'When the state last changed, by the database''s clock (a repeat of the same state leaves it).';
COMMENT ON COLUMN whatsapp_handler.channel_standing.quality_event IS 'Meta: the last phone_number_quality_update''s event (FLAGGED: quality fell to low, UNFLAGGED, DOWNGRADE, UPGRADE, ONBOARDING, THROUGHPUT_UPGRADE, ...).';
COMMENT ON COLUMN whatsapp_handler.channel_standing.current_limit IS 'Meta: the number''s messaging limit with it (current_limit, or max_daily_conversations_per_business: TIER_250, TIER_2K, ..., TIER_UNLIMITED).';
COMMENT ON COLUMN whatsapp_handler.channel_standing.account_event IS 'Meta: the account''s last account_update event (DISABLED_UPDATE, ACCOUNT_VIOLATION, ACCOUNT_RESTRICTION, ACCOUNT_DELETED, VERIFIED_ACCOUNT, ...).';
COMMENT ON COLUMN whatsapp_handler.channel_standing.account_info IS 'Meta: what that event said (ban_info, violation_info, restriction_info, ... of the update''s value).';
COMMENT ON COLUMN whatsapp_handler.channel_standing.account_disabled IS 'Meta: the account is disabled (DISABLED_UPDATE with ban_info.waba_ban_state DISABLE, or ACCOUNT_DELETED) until a DISABLED_UPDATE says REINSTATE: the channel is down.';

-- The one rule of a channel being up: its Evolution instance, once heard of, is open, and its
-- Meta account is not disabled. A SQL expression without a search_path, so that it is inlined.
CREATE FUNCTION whatsapp_handler._channel_connected(p_connection text, p_account_disabled boolean)
RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT coalesce(p_connection OPERATOR(pg_catalog.=) 'open', p_connection IS NULL)
           AND NOT coalesce(p_account_disabled, false)
$$;
REVOKE ALL ON FUNCTION whatsapp_handler._channel_connected(text, boolean) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler._channel_connected(text, boolean) IS
    'Internal: whether a channel of this standing can send: its Evolution connection is open (or was never reported) and its Meta account is not disabled. Raises nothing.';

-- Meta's word that a number is in trouble: its quality rating fell (FLAGGED) or its messaging
-- limit was lowered (DOWNGRADE). Campaigns pause on it (campaigns/standing), doctor warns.
CREATE FUNCTION whatsapp_handler._quality_flagged(p_event text)
RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT coalesce(p_event OPERATOR(pg_catalog.=) ANY (ARRAY['FLAGGED', 'DOWNGRADE']), false)
$$;
REVOKE ALL ON FUNCTION whatsapp_handler._quality_flagged(text) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler._quality_flagged(text) IS
    'Internal: whether a number''s quality event (phone_number_quality_update) says it is in trouble: FLAGGED (quality rating low) or DOWNGRADE (messaging limit lowered). Raises nothing.';

-- A Meta number (display_phone_number, an account update's phone_number) as a channel's phone:
-- its digits after a +; NULL when it has none.
CREATE FUNCTION whatsapp_handler._meta_number(p_number text)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT '+' OPERATOR(pg_catalog.||) NULLIF(pg_catalog.regexp_replace(p_number, '[^0-9]', '', 'g'), '')
$$;
REVOKE ALL ON FUNCTION whatsapp_handler._meta_number(text) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler._meta_number(text) IS
    'Internal: a phone number as Meta writes it in a webhook (digits, maybe spaced or with a +) as a channel''s phone (+ and the digits); NULL for NULL or no digit. Raises nothing.';

-- The standing row of a channel, made when missing and locked for the caller's transaction:
-- every update of a provider starts here, so that two updates of one channel take turns.
CREATE FUNCTION whatsapp_handler._channel_standing_lock(p_channel_id bigint)
RETURNS whatsapp_handler.channel_standing
LANGUAGE plpgsql
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
DECLARE
    v_row channel_standing;
BEGIN
    INSERT INTO channel_standing (channel_id) VALUES (p_channel_id) ON CONFLICT (channel_id) DO NOTHING;
    SELECT * INTO v_row FROM channel_standing WHERE channel_id = p_channel_id FOR UPDATE;
    RETURN v_row;
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler._channel_standing_lock(bigint) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler._channel_standing_lock(bigint) IS
    'Internal: the channel''s standing row, inserted empty when missing, locked FOR UPDATE. Raises nothing of its own.';

-- Internal: called by the Evolution normaliser for each CONNECTION_UPDATE of a known instance.
CREATE FUNCTION whatsapp_handler._channel_connection_update(p_channel_id bigint, p_state text, p_reason integer,
                                                            p_at timestamptz)
RETURNS text
LANGUAGE plpgsql
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
DECLARE
    v_old channel_standing;
BEGIN
    IF p_state IS NULL OR p_state NOT IN ('open', 'connecting', 'close') THEN
        RETURN NULL;
    END IF;
    v_old := _channel_standing_lock(p_channel_id);
    -- Evolution posts each update as it happens, but retries and parallel deliveries can
    -- bring an older one after a newer: its own time decides, when both have one.
    IF p_at < v_old.connection_at THEN
        RETURN 'older';
    END IF;
    IF v_old.connection IS NOT DISTINCT FROM p_state THEN
        UPDATE channel_standing SET connection_reason = p_reason, connection_at = coalesce(p_at, connection_at)
        WHERE channel_id = p_channel_id;
        RETURN 'repeat';
    END IF;
    UPDATE channel_standing
    SET connection = p_state, connection_reason = p_reason, connection_at = coalesce(p_at, connection_at),
        connection_changed_at = now()
    WHERE channel_id = p_channel_id;
    PERFORM _emit_channel_event('channel.connection_changed', p_channel_id,
        jsonb_build_object('state', p_state, 'previous_state', v_old.connection, 'reason', p_reason,
                           'at', p_at, 'connected', _channel_connected(p_state, v_old.account_disabled)));
    RETURN 'changed';
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler._channel_connection_update(bigint, text, integer, timestamptz) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler._channel_connection_update(bigint, text, integer, timestamptz) IS
    'Internal: applies an Evolution CONNECTION_UPDATE (p_state open, connecting or close; p_reason its statusReason; p_at its date_time, or NULL) to the channel''s standing. Returns changed (the state moved: channel.connection_changed queued), repeat (the same state: only its reason and time kept), older (p_at before the update kept: nothing changes), or NULL for a state it does not know. Raises nothing of its own.';

-- The provider's time of a Meta webhook entry (entry.time, Unix seconds), or NULL.
CREATE FUNCTION whatsapp_handler._meta_entry_time(p_time text)
RETURNS timestamptz
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT CASE WHEN p_time OPERATOR(pg_catalog.~) '^[0-9]{1,12}$' THEN pg_catalog.to_timestamp(p_time::double precision) END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler._meta_entry_time(text) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler._meta_entry_time(text) IS
    'Internal: a Meta webhook entry''s time (entry.time, Unix seconds as text) as a timestamptz; NULL when missing or not a number. Raises nothing.';

-- Meta's word on a number (phone_number_quality_update), for the numbers of the account's
-- channels (of that account when the account is known for them: a webhook of one account
-- never moves another account's number).
CREATE FUNCTION whatsapp_handler._meta_quality_update(p_account_id text, p_value jsonb, p_at timestamptz DEFAULT NULL)
RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
DECLARE
    v_event   text := upper(p_value ->> 'event');
    v_limit   text := upper(coalesce(p_value ->> 'current_limit', p_value ->> 'max_daily_conversations_per_business'));
    v_channel bigint;
    v_old     channel_standing;
    v_found   integer := 0;
BEGIN
    IF v_event IS NULL OR v_event !~ '^[A-Z][A-Z_]{0,39}$' OR v_limit !~ '^[A-Z0-9_]{1,40}$' THEN
        RETURN 0;
    END IF;
    FOR v_channel IN
        SELECT c.id FROM channels c LEFT JOIN meta_channel_accounts a ON a.channel_id = c.id
        WHERE c.provider = 'meta' AND c.phone = _meta_number(p_value ->> 'display_phone_number')
          AND (a.account_id IS NULL OR a.account_id = p_account_id)
        ORDER BY c.id
    LOOP
        v_found := v_found + 1;
        v_old := _channel_standing_lock(v_channel);
        CONTINUE WHEN p_at < v_old.quality_at;
        IF (v_old.quality_event, v_old.current_limit) IS NOT DISTINCT FROM (v_event, v_limit) THEN
            UPDATE channel_standing SET quality_at = coalesce(p_at, quality_at) WHERE channel_id = v_channel;
            CONTINUE;
        END IF;
        UPDATE channel_standing
        SET quality_event = v_event, current_limit = v_limit, quality_at = coalesce(p_at, quality_at),
            quality_changed_at = now()
        WHERE channel_id = v_channel;
        PERFORM _emit_channel_event('channel.quality_changed', v_channel,
                                    jsonb_strip_nulls(jsonb_build_object(
                                        'event', v_event, 'current_limit', v_limit, 'previous_event', v_old.quality_event,
                                        'previous_limit', v_old.current_limit)));
    END LOOP;
    RETURN v_found;
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler._meta_quality_update(text, jsonb, timestamptz) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler._meta_quality_update(text, jsonb, timestamptz) IS
    'Internal: applies a phone_number_quality_update of account p_account_id (p_value: display_phone_number, event, current_limit or max_daily_conversations_per_business; p_at the entry''s time or NULL) to the standing of the Meta channels with that number (of that account when known): channel.quality_changed when the event or limit changed, nothing for a repeat or an update older than the one kept. Returns how many channels it found (0 for a value of another shape). Raises nothing of its own.';

-- Meta's word on an account (account_update): the account's channels, or the one number the
-- update names (phone_number), keep its last event; a ban or a deletion takes them down.
CREATE FUNCTION whatsapp_handler._meta_account_update(p_account_id text, p_value jsonb, p_at timestamptz DEFAULT NULL)
RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
DECLARE
    v_event    text := upper(p_value ->> 'event');
    v_info     jsonb := nullif(jsonb_strip_nulls(p_value - 'event' - 'phone_number'), '{}');
    v_ban      text := upper(p_value -> 'ban_info' ->> 'waba_ban_state');
    v_phone    text := _meta_number(p_value ->> 'phone_number');
    v_channel  bigint;
    v_old      channel_standing;
    v_disabled boolean;
    v_found    integer := 0;
BEGIN
    IF v_event IS NULL OR v_event !~ '^[A-Z][A-Z_]{0,63}$' OR p_account_id IS NULL THEN
        RETURN 0;
    END IF;
    FOR v_channel IN
        SELECT a.channel_id FROM meta_channel_accounts a JOIN channels c ON c.id = a.channel_id
        WHERE a.account_id = p_account_id AND c.provider = 'meta' AND (v_phone IS NULL OR c.phone = v_phone)
        ORDER BY a.channel_id
    LOOP
        v_found := v_found + 1;
        v_old := _channel_standing_lock(v_channel);
        CONTINUE WHEN p_at < v_old.account_at;
        v_disabled := CASE
            WHEN v_event = 'ACCOUNT_DELETED' OR (v_event = 'DISABLED_UPDATE' AND v_ban = 'DISABLE') THEN true
            WHEN v_event = 'DISABLED_UPDATE' AND v_ban = 'REINSTATE' THEN false
            ELSE v_old.account_disabled
        END;
        IF (v_old.account_event, v_old.account_info, v_old.account_disabled) IS NOT DISTINCT FROM (v_event, v_info, v_disabled) THEN
            UPDATE channel_standing SET account_at = coalesce(p_at, account_at) WHERE channel_id = v_channel;
            CONTINUE;
        END IF;
        UPDATE channel_standing
        SET account_event = v_event, account_info = v_info, account_disabled = v_disabled,
            account_at = coalesce(p_at, account_at), account_changed_at = now()
        WHERE channel_id = v_channel;
        PERFORM _emit_channel_event('channel.account_changed', v_channel,
            jsonb_build_object('event', v_event, 'info', v_info, 'disabled', v_disabled,
                               'previous_event', v_old.account_event,
                               'connected', _channel_connected(v_old.connection, v_disabled)));
    END LOOP;
    RETURN v_found;
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler._meta_account_update(text, jsonb, timestamptz) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler._meta_account_update(text, jsonb, timestamptz) IS
    'Internal: applies an account_update of account p_account_id (p_value: event, ban_info, violation_info, restriction_info, ..., phone_number for a number''s own event; p_at the entry''s time or NULL) to the standing of that account''s Meta channels (meta_channel_accounts), or of the one with that number: the last event and what it said; DISABLED_UPDATE with waba_ban_state DISABLE and ACCOUNT_DELETED disable the account, REINSTATE enables it. channel.account_changed when anything of it changed; nothing for a repeat or an update older than the one kept. Returns how many channels it found. Raises nothing of its own.';

-- For /metrics and doctor: every active channel, heard of or not.
CREATE FUNCTION whatsapp_handler.worker_channel_standing()
RETURNS TABLE (channel_id bigint, provider text, connected boolean, connection text, connection_reason integer,
               state_seconds double precision, quality_event text, current_limit text, quality_flagged boolean,
               account_event text, account_disabled boolean)
LANGUAGE sql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
    SELECT c.id, c.provider::text, _channel_connected(s.connection, s.account_disabled), s.connection,
           s.connection_reason,
           extract(epoch FROM now() - greatest(s.connection_changed_at, s.account_changed_at))::double precision,
           s.quality_event, s.current_limit, _quality_flagged(s.quality_event), s.account_event,
           coalesce(s.account_disabled, false)
    FROM channels c LEFT JOIN channel_standing s ON s.channel_id = c.id
    WHERE c.active
    ORDER BY c.id
$$;
REVOKE ALL ON FUNCTION whatsapp_handler.worker_channel_standing() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION whatsapp_handler.worker_channel_standing() TO whatsapp_handler_worker;
COMMENT ON FUNCTION whatsapp_handler.worker_channel_standing() IS
    'For /metrics: each active channel with its standing: connected (_channel_connected), the Evolution connection state and reason, the seconds since its connection state or its account''s standing last changed (NULL when never told), the Meta number''s quality event and limit and whether it is flagged (_quality_flagged), the Meta account''s last event and whether it is disabled. Raises nothing.';

COMMIT;
