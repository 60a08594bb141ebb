-- Deploy whatsapp_handler:users/accept_terms to pg
-- requires: users/helpers outbox/event_envelope
-- Reworked after v1.0.0: calls _complete_onboarding (users/helpers), which replaced
-- _complete_registration; nothing else changed. CREATE OR REPLACE over the released
-- function (deploy/users/accept_terms@v1.0.0.sql runs first).
BEGIN;
SET LOCAL ROLE whatsapp_handler_owner;

CREATE OR REPLACE FUNCTION whatsapp_handler.accept_terms(p_user_id bigint, p_terms_version text)
RETURNS boolean
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
DECLARE
    v_user users;
BEGIN
    IF p_terms_version IS NULL OR p_terms_version !~ '^[A-Za-z0-9._-]{1,32}$' THEN
        RAISE EXCEPTION 'malformed terms version: %', coalesce(quote_literal(left(p_terms_version, 40)), 'NULL')
            USING ERRCODE = 'WH008', HINT = 'A terms version is 1-32 of letters, digits, dot, dash and underscore, e.g. 2026-11.';
    END IF;
    v_user := _lock_user(p_user_id);
    IF v_user.terms_version = p_terms_version THEN
        RETURN false;
    END IF;
    UPDATE users SET terms_accepted_at = now(), terms_version = p_terms_version, updated_at = now()
    WHERE id = p_user_id;
    PERFORM _complete_onboarding(p_user_id);
    PERFORM _emit_event('user.terms_accepted', p_user_id,
                        jsonb_build_object('terms_version', p_terms_version,
                                           'previous_terms_version', v_user.terms_version));
    RETURN true;
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler.accept_terms(bigint, text) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler.accept_terms(bigint, text) IS
    'Records that the user accepted the given terms version and emits user.terms_accepted; returns false (and emits nothing) when that version was already accepted. Raises WH008 malformed version, WH002 unknown user, WH009 erased, WH004 blocked.';

COMMIT;
