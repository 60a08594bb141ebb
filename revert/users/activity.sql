-- Revert whatsapp_handler:users/activity from pg
-- Puts back the functions as v1.0.0 released them (deploy/users/activity@v1.0.0.sql).
BEGIN;
SET LOCAL ROLE whatsapp_handler_owner;

-- Set-based, so that the fast lane touches a batch's senders in one statement and
-- _record_inbound its one sender with the same code. p_resolution: ingestion records
-- activity to the minute (it drives the GDPR inactivity job), which saves an update of
-- the user row per message in a busy conversation; an operator's touch is exact.
CREATE OR REPLACE FUNCTION whatsapp_handler._touch_activity(p_user_ids bigint[], p_resolution interval DEFAULT interval '1 minute')
RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
DECLARE
    v_touched integer;
BEGIN
    UPDATE users SET last_active_at = now()
    WHERE id = ANY (p_user_ids) AND erased_at IS NULL
      AND (last_active_at IS NULL OR last_active_at < now() - p_resolution);
    GET DIAGNOSTICS v_touched = ROW_COUNT;
    RETURN v_touched;
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler._touch_activity(bigint[], interval) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler._touch_activity(bigint[], interval) IS
    'Internal: marks the users active now unless they were within p_resolution (default a minute) or later, never moving last_active_at backwards; erased and unknown ids are skipped. Returns the number of rows changed. Raises nothing.';

CREATE OR REPLACE FUNCTION whatsapp_handler.touch_user_activity(p_user_id bigint)
RETURNS timestamptz
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
DECLARE
    v_at timestamptz;
BEGIN
    -- Bookkeeping, not a domain event: no outbox message.
    PERFORM _touch_activity(ARRAY[p_user_id], interval '0');
    SELECT last_active_at INTO v_at FROM users WHERE id = p_user_id AND erased_at IS NULL;
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
