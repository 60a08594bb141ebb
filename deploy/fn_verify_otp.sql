-- Deploy whatsapp_handler:fn_verify_otp to pg
-- requires: fn_user_helpers table_otp_challenges fn_emit_event extension_pgcrypto
BEGIN;
SET LOCAL ROLE whatsapp_handler_owner;

CREATE FUNCTION whatsapp_handler.verify_otp(p_phone text, p_code text)
RETURNS text
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
DECLARE
    c_max_failures CONSTANT integer := 5;
    v_user_id   bigint;
    v_challenge otp_challenges;
BEGIN
    PERFORM _check_phone(p_phone);
    -- An unknown phone answers like a phone without a code: nothing tells who is registered.
    SELECT id INTO v_user_id FROM users WHERE phone = p_phone;
    IF v_user_id IS NULL THEN
        RETURN 'no_challenge';
    END IF;
    -- The user row lock serialises verifications of one phone: of two concurrent ones
    -- with the right code, the second finds the challenge already used.
    PERFORM _lock_user(v_user_id);

    SELECT * INTO v_challenge FROM otp_challenges c
    WHERE c.user_id = v_user_id ORDER BY c.created_at DESC, c.id DESC LIMIT 1;
    IF NOT FOUND OR v_challenge.status IN ('verified', 'superseded') THEN
        RETURN 'no_challenge';
    ELSIF v_challenge.status IN ('locked', 'expired') THEN
        RETURN v_challenge.status::text;
    ELSIF v_challenge.expires_at <= now() THEN
        UPDATE otp_challenges SET status = 'expired', code_hash = NULL, resolved_at = now() WHERE id = v_challenge.id;
        RETURN 'expired';
    ELSIF p_code ~ '^[0-9]{6}$' AND public.crypt(p_code, v_challenge.code_hash) = v_challenge.code_hash THEN
        UPDATE otp_challenges SET status = 'verified', code_hash = NULL, resolved_at = now() WHERE id = v_challenge.id;
        UPDATE users SET verified_at = now(), updated_at = now() WHERE id = v_user_id;
        PERFORM _complete_registration(v_user_id);
        PERFORM _emit_event('user.verified', v_user_id, jsonb_build_object('challenge_id', v_challenge.id));
        RETURN 'verified';
    END IF;

    -- A wrong (or malformed) code counts; the fifth locks the challenge.
    IF v_challenge.failed_attempts + 1 >= c_max_failures THEN
        UPDATE otp_challenges SET failed_attempts = c_max_failures, status = 'locked', code_hash = NULL, resolved_at = now()
        WHERE id = v_challenge.id;
        RETURN 'locked';
    END IF;
    UPDATE otp_challenges SET failed_attempts = failed_attempts + 1 WHERE id = v_challenge.id;
    RETURN 'invalid';
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler.verify_otp(text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION whatsapp_handler.verify_otp(text, text) TO whatsapp_handler_relay;
COMMENT ON FUNCTION whatsapp_handler.verify_otp(text, text) IS
    'Checks a code against the phone''s latest challenge and returns the outcome: verified (single use; stamps verified_at, emits user.verified), invalid (wrong code, counted), locked (5 wrong codes), expired (past 10 minutes), no_challenge (no live code, or an unknown phone). Outcomes are returned, not raised, so that a failed attempt is committed. Raises WH001 malformed phone, WH004 blocked.';

COMMIT;
