-- Deploy whatsapp_handler:users/helpers to pg
-- requires: users/users core/e164
-- Internal helpers shared by the user API; callable only by the owner.
BEGIN;
SET LOCAL ROLE whatsapp_handler_owner;

CREATE FUNCTION whatsapp_handler._check_phone(p_phone text)
RETURNS text
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
BEGIN
    IF p_phone IS NULL OR NOT _is_e164(p_phone) THEN
        -- The number is not echoed: PostgreSQL logs the message, and a log holds no personal data.
        RAISE EXCEPTION 'malformed phone number'
            USING ERRCODE = 'WH001',
                  HINT = 'Give the number in E.164: a +, the country code and the number, 8 to 16 characters, e.g. +447700900123.';
    END IF;
    RETURN p_phone;
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler._check_phone(text) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler._check_phone(text) IS
    'Internal: returns the phone when it is E.164; raises WH001 otherwise.';

CREATE FUNCTION whatsapp_handler._lock_user(p_user_id bigint, p_allow_blocked boolean DEFAULT false)
RETURNS whatsapp_handler.users
LANGUAGE plpgsql
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
DECLARE
    v_user users;
BEGIN
    -- Every change to a user (and to its OTP challenges) holds this row lock, which
    -- serialises concurrent calls about the same person.
    SELECT * INTO v_user FROM users WHERE id = p_user_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'unknown user %', p_user_id
            USING ERRCODE = 'WH002', HINT = 'Register the user first (register_user), or check the id.';
    END IF;
    IF v_user.erased_at IS NOT NULL THEN
        RAISE EXCEPTION 'user % was erased', p_user_id
            USING ERRCODE = 'WH009', HINT = 'An erased user cannot be changed; register the phone again as a new user.';
    END IF;
    IF v_user.blocked_at IS NOT NULL AND NOT p_allow_blocked THEN
        RAISE EXCEPTION 'user % is blocked', p_user_id
            USING ERRCODE = 'WH004', HINT = 'Unblock the user (unblock_user) first.';
    END IF;
    RETURN v_user;
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler._lock_user(bigint, boolean) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler._lock_user(bigint, boolean) IS
    'Internal: locks and returns a user row. Raises WH002 (unknown), WH009 (erased), WH004 (blocked, unless p_allow_blocked).';

CREATE FUNCTION whatsapp_handler._complete_registration(p_user_id bigint)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
BEGIN
    UPDATE users SET registered_at = now()
    WHERE id = p_user_id AND registered_at IS NULL
      AND verified_at IS NOT NULL AND terms_accepted_at IS NOT NULL;
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler._complete_registration(bigint) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler._complete_registration(bigint) IS
    'Internal: stamps registered_at once the user is both verified and has accepted terms. Raises nothing.';

COMMIT;
