-- Deploy whatsapp_handler:users/activity to pg
-- requires: users/helpers
BEGIN;
SET LOCAL ROLE whatsapp_handler_owner;

CREATE FUNCTION whatsapp_handler.touch_user_activity(p_user_id bigint)
RETURNS timestamptz
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
DECLARE
    v_at timestamptz;
BEGIN
    -- Bookkeeping, not a domain event: no outbox message. greatest() keeps a late,
    -- slower transaction from moving the time backwards.
    UPDATE users SET last_active_at = greatest(last_active_at, now())
    WHERE id = p_user_id AND erased_at IS NULL
    RETURNING last_active_at INTO v_at;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'unknown or erased user %', p_user_id
            USING ERRCODE = 'WH002', HINT = 'Register the user first (register_user), or check the id.';
    END IF;
    RETURN v_at;
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler.touch_user_activity(bigint) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler.touch_user_activity(bigint) IS
    'Marks the user active now (never moves last_active_at backwards); returns last_active_at. Emits no event. Raises WH002 unknown or erased user.';

COMMIT;
