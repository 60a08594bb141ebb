-- Deploy whatsapp_handler:fn_request_otp to pg
-- requires: fn_register_user table_otp_challenges queue_outbound extension_pgcrypto
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

CREATE FUNCTION whatsapp_handler.request_otp(p_phone text, p_channel_id bigint,
                                             OUT challenge_id bigint, OUT expires_at timestamptz)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
DECLARE
    c_ttl          CONSTANT interval := interval '10 minutes';
    c_cooldown     CONSTANT interval := interval '60 seconds';
    c_window       CONSTANT interval := interval '1 hour';
    c_per_window   CONSTANT integer := 5;
    c_max_failures CONSTANT integer := 5;
    v_user_id  bigint;
    v_latest   otp_challenges;
    v_recent   integer;
    v_oldest   timestamptz;
    v_carried  integer := 0;
    v_code     text;
BEGIN
    SELECT r.user_id INTO v_user_id FROM register_user(p_phone, p_channel_id) r;
    PERFORM _lock_user(v_user_id);

    SELECT * INTO v_latest FROM otp_challenges c
    WHERE c.user_id = v_user_id ORDER BY c.created_at DESC, c.id DESC LIMIT 1;
    IF v_latest.created_at > now() - c_cooldown THEN
        RAISE EXCEPTION 'a code was sent less than % seconds ago', extract(epoch FROM c_cooldown)
            USING ERRCODE = 'WH005',
                  -- now() is this transaction's start: one that waited on _lock_user for the code it is
                  -- refused for started before that code, so the wait is capped at the cooldown.
                  DETAIL = format('retry_after_seconds=%s', least(ceil(extract(epoch FROM v_latest.created_at + c_cooldown - now())), extract(epoch FROM c_cooldown))),
                  HINT = 'Wait before asking for another code.';
    END IF;
    SELECT count(*), min(c.created_at) INTO v_recent, v_oldest FROM otp_challenges c
    WHERE c.user_id = v_user_id AND c.created_at > now() - c_window;
    IF v_recent >= c_per_window THEN
        RAISE EXCEPTION 'at most % codes per phone per hour', c_per_window
            USING ERRCODE = 'WH006',
                  DETAIL = format('retry_after_seconds=%s', least(ceil(extract(epoch FROM v_oldest + c_window - now())), extract(epoch FROM c_window))),
                  HINT = 'Wait for the hourly limit to pass.';
    END IF;
    -- Failed attempts survive a new code (NIST 800-63B): a brute force cannot reset its
    -- counter by asking again. They lapse an hour after the last unverified code.
    IF v_latest.status <> 'verified' AND v_latest.created_at > now() - c_window THEN
        v_carried := v_latest.failed_attempts;
    END IF;
    IF v_carried >= c_max_failures THEN
        RAISE EXCEPTION 'too many wrong codes for this phone'
            USING ERRCODE = 'WH007',
                  DETAIL = format('retry_after_seconds=%s', least(ceil(extract(epoch FROM v_latest.created_at + c_window - now())), extract(epoch FROM c_window))),
                  HINT = 'The phone is locked for an hour after the last code was issued.';
    END IF;

    UPDATE otp_challenges c SET status = 'superseded', code_hash = NULL, resolved_at = now()
    WHERE c.user_id = v_user_id AND c.status = 'pending';

    v_code := _new_otp_code();
    INSERT INTO otp_challenges (user_id, channel_id, code_hash, failed_attempts, expires_at)
    VALUES (v_user_id, p_channel_id, public.crypt(v_code, public.gen_salt('bf', 6)), v_carried, now() + c_ttl)
    RETURNING id, otp_challenges.expires_at INTO challenge_id, expires_at;

    -- The only place the plaintext code goes: the message that delivers it. The worker
    -- deletes (never archives) it once delivered.
    PERFORM pgmq.send('outbound',
        jsonb_build_object('kind', 'otp', 'channel_id', p_channel_id, 'user_id', v_user_id, 'to', p_phone,
                           'challenge_id', challenge_id, 'code', v_code, 'expires_at', expires_at,
                           'correlation_id', correlation_id()),
        jsonb_build_object('x-pgmq-group', 'user:' || v_user_id));
    PERFORM _emit_event('otp.requested', v_user_id,
        jsonb_build_object('challenge_id', challenge_id, 'channel_id', p_channel_id, 'expires_at', expires_at));
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler.request_otp(text, bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION whatsapp_handler.request_otp(text, bigint) TO whatsapp_handler_relay;
COMMENT ON FUNCTION whatsapp_handler.request_otp(text, bigint) IS
    'Issues a 6-digit OTP code for a phone (registering it on the channel if new): stores only its bcrypt hash, valid 10 minutes, supersedes the previous code but keeps its failed-attempt count, queues the code on pgmq queue outbound and emits otp.requested (without the code). Returns (challenge_id, expires_at). Raises WH001 malformed phone, WH003 unknown channel, WH004 blocked, WH005 less than 60 s since the last code, WH006 5 codes in the last hour, WH007 locked after 5 wrong codes; rate-limit errors carry DETAIL retry_after_seconds=N.';

COMMIT;
