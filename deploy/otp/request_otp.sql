-- Deploy whatsapp_handler:otp/request_otp to pg
-- requires: users/register_user otp/challenges queue/outbound core/pgcrypto otp/rate_buckets otp/policy jobs/settings
BEGIN;
SET LOCAL ROLE whatsapp_handler_owner;

CREATE FUNCTION whatsapp_handler._new_otp_code()
RETURNS text
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
    -- 48 random bits from pgcrypto's CSPRNG reduced mod 10^6: the bias is below 10^-8.
    SELECT lpad((('x' || encode(public.gen_random_bytes(6), 'hex'))::bit(48)::bigint % 1000000)::text, 6, '0')
$$;
REVOKE ALL ON FUNCTION whatsapp_handler._new_otp_code() FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler._new_otp_code() IS 'Internal: six decimal digits from a CSPRNG. Raises nothing.';

INSERT INTO whatsapp_handler.settings (key, value, description) VALUES
    ('otp.country_codes', 'null', 'Calling codes (E.164 prefixes of 1 to 6 digits, as JSON strings, e.g. ["44", "49", "1"]) that request_otp sends codes to; any other number is refused (WH055). null, the value a deploy leaves, refuses every request (WH058) until a DBA lists the countries the business serves; [] refuses all on purpose.');

CREATE FUNCTION whatsapp_handler._check_otp_destination(p_phone text)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
DECLARE
    v_codes jsonb := _setting('otp.country_codes');
BEGIN
    -- No list is not "everywhere": premium and far-away ranges are what pumping runs dial.
    IF jsonb_typeof(v_codes) IS DISTINCT FROM 'array'
       OR EXISTS (SELECT FROM jsonb_array_elements(v_codes) e
                  WHERE jsonb_typeof(e) <> 'string' OR e #>> '{}' !~ '^[1-9][0-9]{0,5}$') THEN
        RAISE EXCEPTION 'OTP destinations are not configured: setting otp.country_codes is %',
                        CASE WHEN v_codes = 'null' THEN 'not set' ELSE 'not a list of calling codes' END
            USING ERRCODE = 'WH058',
                  HINT = 'A DBA lists the calling codes codes may go to: UPDATE whatsapp_handler.settings SET value = ''["44", "49"]'' WHERE key = ''otp.country_codes''.';
    END IF;
    IF NOT EXISTS (SELECT FROM jsonb_array_elements_text(v_codes) c WHERE starts_with(p_phone, '+' || c)) THEN
        RAISE EXCEPTION 'OTP codes are not sent to this country'
            USING ERRCODE = 'WH055',
                  HINT = 'Only numbers under the calling codes of setting otp.country_codes receive codes.';
    END IF;
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler._check_otp_destination(text) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler._check_otp_destination(text) IS
    'Internal: passes when the phone starts with one of the calling codes of setting otp.country_codes. Raises WH055 another country, WH058 the setting is null (not configured) or not a list of 1-6 digit strings, WH011 the setting is missing.';

CREATE FUNCTION whatsapp_handler.request_otp(p_phone text, p_channel_id bigint, p_key_id text DEFAULT 'sql',
                                             p_correlation_id text DEFAULT NULL,
                                             OUT challenge_id bigint, OUT expires_at timestamptz)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
DECLARE
    v_policy   record;
    v_user_id  bigint;
    v_user     users;
    v_wait     integer;
    v_latest   otp_challenges;
    v_recent   integer;
    v_oldest   timestamptz;
    v_carried  integer := 0;
    v_code     text;
BEGIN
    -- A SQL caller may have set the id for its transaction itself; a relay call passes it.
    IF p_correlation_id IS NOT NULL THEN
        PERFORM set_config('whatsapp_handler.correlation_id', left(p_correlation_id, 128), true);
    END IF;
    PERFORM _check_phone(p_phone);
    IF p_key_id IS NULL OR p_key_id !~ '^[A-Za-z0-9_.-]{1,64}$' THEN
        RAISE EXCEPTION 'malformed API key id'
            USING ERRCODE = 'WH008', HINT = 'Pass an identifier of the caller''s API key (1 to 64 of A-Z a-z 0-9 _ . -), never the key itself.';
    END IF;
    -- Pumping defences first, before anything is written: the destination country, then a
    -- token from the key's bucket and one from the overall bucket. Their row locks are held to
    -- the commit, so concurrent requests cannot overdraw a bucket; any refusal below rolls
    -- the tokens back.
    PERFORM _check_otp_destination(p_phone);
    v_wait := _take_otp_token('key:' || p_key_id, _setting_integer('otp.limit.per_key.per_minute', 1, 100000),
                              _setting_integer('otp.limit.per_key.burst', 1, 100000));
    IF v_wait > 0 THEN
        RAISE EXCEPTION 'too many codes requested with this API key'
            USING ERRCODE = 'WH056',
                  DETAIL = _retry_after(v_wait),
                  HINT = 'The key''s rate is settings otp.limit.per_key.per_minute and otp.limit.per_key.burst.';
    END IF;
    v_wait := _take_otp_token('overall', _setting_integer('otp.limit.overall.per_minute', 1, 100000),
                              _setting_integer('otp.limit.overall.burst', 1, 100000));
    IF v_wait > 0 THEN
        RAISE EXCEPTION 'too many codes requested overall'
            USING ERRCODE = 'WH057',
                  DETAIL = _retry_after(v_wait),
                  HINT = 'The overall rate is settings otp.limit.overall.per_minute and otp.limit.overall.burst.';
    END IF;

    v_policy := _otp_policy();
    SELECT r.user_id INTO v_user_id FROM register_user(p_phone, p_channel_id) r;
    -- A blocked phone goes the same way as any other and gets the same answer (a challenge no
    -- code reaches): only the message and the event are left out, so the API does not tell
    -- who is blocked. _lock_user is not used: its errors name the user's internal id.
    SELECT * INTO v_user FROM users u WHERE u.id = v_user_id FOR UPDATE;
    IF v_user.erased_at IS NOT NULL THEN
        RAISE EXCEPTION 'the phone''s user was erased while the code was being requested'
            USING ERRCODE = 'WH009', HINT = 'Ask again: the phone is then registered as a new user.';
    END IF;

    SELECT * INTO v_latest FROM otp_challenges c
    WHERE c.user_id = v_user_id ORDER BY c.created_at DESC, c.id DESC LIMIT 1;
    IF v_latest.created_at > now() - v_policy.cooldown THEN
        RAISE EXCEPTION 'a code was sent less than % seconds ago', extract(epoch FROM v_policy.cooldown)::integer
            USING ERRCODE = 'WH005',
                  -- now() is this transaction's start: one that waited on the user's lock for the code it is
                  -- refused for started before that code, so the wait is capped at the cooldown.
                  DETAIL = _retry_after(least(extract(epoch FROM v_latest.created_at + v_policy.cooldown - now()),
                                               extract(epoch FROM v_policy.cooldown))),
                  HINT = 'Wait before asking for another code.';
    END IF;
    SELECT count(*), min(c.created_at) INTO v_recent, v_oldest FROM otp_challenges c
    WHERE c.user_id = v_user_id AND c.created_at > now() - v_policy.rate_window;
    IF v_recent >= v_policy.per_window THEN
        RAISE EXCEPTION 'at most % codes per phone within % seconds', v_policy.per_window,
            extract(epoch FROM v_policy.rate_window)::integer
            USING ERRCODE = 'WH006',
                  DETAIL = _retry_after(least(extract(epoch FROM v_oldest + v_policy.rate_window - now()),
                                              extract(epoch FROM v_policy.rate_window))),
                  HINT = 'Wait for the limit''s period (setting otp.window) to pass.';
    END IF;
    -- Failed attempts survive a new code (NIST 800-63B): a brute force cannot reset its
    -- counter by asking again. They lapse otp.window after the last unverified code.
    IF v_latest.status <> 'verified' AND v_latest.created_at > now() - v_policy.rate_window THEN
        v_carried := v_latest.failed_attempts;
    END IF;
    IF v_carried >= v_policy.max_failures THEN
        RAISE EXCEPTION 'too many wrong codes for this phone'
            USING ERRCODE = 'WH007',
                  DETAIL = _retry_after(least(extract(epoch FROM v_latest.created_at + v_policy.rate_window - now()),
                                              extract(epoch FROM v_policy.rate_window))),
                  HINT = 'The phone is locked for the period of setting otp.window after the last code was issued.';
    END IF;

    UPDATE otp_challenges c SET status = 'superseded', code_hash = NULL, resolved_at = now()
    WHERE c.user_id = v_user_id AND c.status = 'pending';

    v_code := _new_otp_code();
    INSERT INTO otp_challenges (user_id, channel_id, code_hash, failed_attempts, expires_at)
    VALUES (v_user_id, p_channel_id, public.crypt(v_code, public.gen_salt('bf', 6)), v_carried, now() + v_policy.code_ttl)
    RETURNING id, otp_challenges.expires_at INTO challenge_id, expires_at;

    IF v_user.blocked_at IS NOT NULL THEN
        RETURN;
    END IF;
    -- The only place the plaintext code goes: the message that delivers it. The worker
    -- deletes (never archives) it once delivered.
    PERFORM _enqueue_outbound(
        jsonb_build_object('kind', 'otp', 'channel_id', p_channel_id, 'user_id', v_user_id, 'to', p_phone,
                           'challenge_id', challenge_id, 'code', v_code, 'expires_at', expires_at,
                           'correlation_id', correlation_id()),
        'user:' || v_user_id);
    PERFORM _emit_event('otp.requested', v_user_id,
        jsonb_build_object('challenge_id', challenge_id, 'channel_id', p_channel_id, 'expires_at', expires_at));
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler.request_otp(text, bigint, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION whatsapp_handler.request_otp(text, bigint, text, text) TO whatsapp_handler_relay;
COMMENT ON FUNCTION whatsapp_handler.request_otp(text, bigint, text, text) IS
    'Issues a 6-digit OTP code for a phone (registering it on the channel if new): stores only its bcrypt hash, valid for setting otp.code_ttl, supersedes the previous code but keeps its failed-attempt count, queues the code on pgmq queue outbound and emits otp.requested (without the code). p_key_id identifies the caller''s API key (never the key itself; direct SQL callers share the bucket ''sql''). Only numbers under a calling code of setting otp.country_codes are served, and each request takes a token from the key''s bucket and from the overall one (settings otp.limit.*). A blocked phone gets the same answer, and a challenge, but no message and no event. Returns (challenge_id, expires_at). Raises WH001 malformed phone, WH003 unknown channel, WH008 malformed key id, WH009 user erased meanwhile, WH055 country not allowed, WH058 otp.country_codes not configured, WH056 the key''s bucket is empty, WH057 the overall bucket is empty, WH005 less than otp.cooldown since the last code, WH006 otp.per_window codes within otp.window, WH007 locked after otp.max_failures wrong codes, WH011/WH020 a missing or malformed otp.limit or policy setting (otp/policy); rate-limit errors carry DETAIL {"retry_after_seconds": N}. p_correlation_id, when given, becomes the transaction''s correlation id (events and the queued message carry it).';

COMMIT;
