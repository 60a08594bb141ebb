-- Deploy whatsapp_handler:users/block_user to pg
-- requires: users/helpers outbox/event_envelope
BEGIN;
SET LOCAL ROLE whatsapp_handler_owner;

CREATE FUNCTION whatsapp_handler.block_user(p_user_id bigint, p_reason text)
RETURNS boolean
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
DECLARE
    v_user users;
BEGIN
    IF coalesce(char_length(trim(p_reason)), 0) NOT BETWEEN 1 AND 500 THEN
        RAISE EXCEPTION 'a block needs a reason of 1 to 500 characters'
            USING ERRCODE = 'WH008', HINT = 'Say why, e.g. ''spam reported by agent''.';
    END IF;
    v_user := _lock_user(p_user_id, p_allow_blocked => true);
    IF v_user.blocked_at IS NOT NULL THEN
        RETURN false;
    END IF;
    UPDATE users SET blocked_at = now(), blocked_reason = trim(p_reason), updated_at = now() WHERE id = p_user_id;
    PERFORM _emit_event('user.blocked', p_user_id, jsonb_build_object('reason', trim(p_reason)));
    RETURN true;
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler.block_user(bigint, text) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler.block_user(bigint, text) IS
    'Blocks a user (a blocked user gets no messages and no OTP) and emits user.blocked; returns false when already blocked. Raises WH008 missing reason, WH002 unknown user, WH009 erased.';

CREATE FUNCTION whatsapp_handler.unblock_user(p_user_id bigint)
RETURNS boolean
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
DECLARE
    v_user users;
BEGIN
    v_user := _lock_user(p_user_id, p_allow_blocked => true);
    IF v_user.blocked_at IS NULL THEN
        RETURN false;
    END IF;
    UPDATE users SET blocked_at = NULL, blocked_reason = NULL, updated_at = now() WHERE id = p_user_id;
    PERFORM _emit_event('user.unblocked', p_user_id);
    RETURN true;
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler.unblock_user(bigint) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler.unblock_user(bigint) IS
    'Lifts a block and emits user.unblocked; returns false when the user was not blocked. Raises WH002 unknown user, WH009 erased.';

COMMIT;
