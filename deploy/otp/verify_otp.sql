-- Deploy whatsapp_handler:otp/verify_otp to pg
-- requires: users/helpers otp/challenges otp/policy outbox/event_envelope core/pgcrypto
-- Reworked after v1.0.0: calls _complete_onboarding (users/helpers), which replaced
-- _complete_registration; nothing else changed. CREATE OR REPLACE over the released
-- function (deploy/otp/verify_otp@v1.0.0.sql runs first).
BEGIN;
SET LOCAL ROLE whatsapp_handler_owner;

CREATE OR REPLACE FUNCTION whatsapp_handler.verify_otp(p_phone text, p_code text, p_correlation_id text DEFAULT NULL)
RETURNS text
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
DECLARE
    -- A bcrypt hash of cost 6, as request_otp makes, of the words 'no six-digit code': what an unknown,
    -- blocked or code-less phone's guess is compared with, so that every call costs one bcrypt.
    c_no_code_hash CONSTANT text := '$2a$06$CKHafRgx041iifum/VHCH.LyTdhr0IJoWlugkELC/7XmC7xPRA0Q2';
    v_user      users;
    v_challenge otp_challenges;
    v_live      boolean;
    v_match     boolean;
    v_max_failures integer;
BEGIN
    -- A SQL caller may have set the id for its transaction itself; a relay call passes it.
    IF p_correlation_id IS NOT NULL THEN
        PERFORM set_config('whatsapp_handler.correlation_id', left(p_correlation_id, 128), true);
    END IF;
    PERFORM _check_phone(p_phone);
    -- Read on every path, known phone or not, so that it costs every call the same.
    v_max_failures := (_otp_policy()).max_failures;
    -- Unknown, blocked and registered phones take one path, with the same statements, one
    -- bcrypt comparison each and the same answers: neither the outcome nor the time tells who
    -- is registered or blocked. _lock_user is not used: its errors name the internal id.
    SELECT * INTO v_user FROM users u WHERE u.phone = p_phone;
    SELECT * INTO v_challenge FROM otp_challenges c
    WHERE c.user_id = v_user.id ORDER BY c.created_at DESC, c.id DESC LIMIT 1;
    -- Only a pending code is changed by a verification, so only then is the user's row locked
    -- (which serialises verifications of one phone: of two concurrent ones with the right code,
    -- the second finds the challenge used) and the challenge read again under the lock. A phone
    -- without one, known or not, locks nothing and writes nothing: a row lock would give the
    -- transaction an id and its commit a WAL flush, milliseconds an unknown phone would not pay.
    IF v_challenge.status = 'pending' THEN
        SELECT * INTO v_user FROM users u WHERE u.id = v_user.id FOR UPDATE;
        SELECT * INTO v_challenge FROM otp_challenges c
        WHERE c.user_id = v_user.id ORDER BY c.created_at DESC, c.id DESC LIMIT 1;
    END IF;
    v_live := v_challenge.status = 'pending' AND v_challenge.expires_at > now();
    v_match := public.crypt(coalesce(p_code, ''), CASE WHEN v_live THEN v_challenge.code_hash ELSE c_no_code_hash END)
               = v_challenge.code_hash;
    -- A blocked user's challenge is the decoy request_otp made without sending a code: it is
    -- answered like any other, and never verified.
    v_match := coalesce(v_match AND v_live AND p_code ~ '^[0-9]{6}$' AND v_user.blocked_at IS NULL, false);

    IF v_challenge.id IS NULL OR v_challenge.status IN ('verified', 'superseded') THEN
        RETURN 'no_challenge';
    ELSIF v_challenge.status IN ('locked', 'expired') THEN
        RETURN v_challenge.status::text;
    ELSIF NOT v_live THEN
        UPDATE otp_challenges SET status = 'expired', code_hash = NULL, resolved_at = now() WHERE id = v_challenge.id;
        RETURN 'expired';
    ELSIF v_match THEN
        UPDATE otp_challenges SET status = 'verified', code_hash = NULL, resolved_at = now() WHERE id = v_challenge.id;
        UPDATE users SET verified_at = now(), updated_at = now() WHERE id = v_user.id;
        PERFORM _complete_onboarding(v_user.id);
        PERFORM _emit_event('user.verified', v_user.id, jsonb_build_object('challenge_id', v_challenge.id));
        RETURN 'verified';
    END IF;

    -- A wrong (or malformed) code counts; the otp.max_failures-th locks the challenge.
    IF v_challenge.failed_attempts + 1 >= v_max_failures THEN
        UPDATE otp_challenges SET failed_attempts = v_max_failures, status = 'locked', code_hash = NULL, resolved_at = now()
        WHERE id = v_challenge.id;
        RETURN 'locked';
    END IF;
    UPDATE otp_challenges SET failed_attempts = failed_attempts + 1 WHERE id = v_challenge.id;
    RETURN 'invalid';
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler.verify_otp(text, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION whatsapp_handler.verify_otp(text, text, text) TO whatsapp_handler_relay;
COMMENT ON FUNCTION whatsapp_handler.verify_otp(text, text, text) IS
    'Checks a code against the phone''s latest challenge and returns the outcome: verified (single use; stamps verified_at, emits user.verified), invalid (wrong code, counted), locked (setting otp.max_failures wrong codes), expired (past its expires_at, setting otp.code_ttl when issued), no_challenge (no live code, or an unknown phone). Outcomes are returned, not raised, so that a failed attempt is committed. Unknown, blocked and registered phones take the same statements and one bcrypt comparison each, and get the same outcomes: a blocked phone''s code never verifies. p_correlation_id, when given, becomes the transaction''s correlation id (user.verified carries it). Raises WH001 malformed phone, WH011/WH020 a missing or malformed policy setting (otp/policy).';

COMMIT;
