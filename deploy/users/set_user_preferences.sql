-- Deploy whatsapp_handler:users/set_user_preferences to pg
-- requires: users/helpers outbox/event_envelope users/preferences
BEGIN;
SET LOCAL ROLE whatsapp_handler_owner;

CREATE FUNCTION whatsapp_handler.set_user_preferences(p_user_id bigint, p_changes jsonb)
RETURNS jsonb
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
DECLARE
    c_types   CONSTANT jsonb := '{"notifications_enabled": "boolean", "language": "string", "timezone": "string",
                                  "delay_threshold_minutes": "number", "auto_claim": "boolean"}';
    v_key     text;
    v_before  jsonb;
    v_after   jsonb;
    v_changed jsonb;
BEGIN
    IF p_changes IS NULL OR jsonb_typeof(p_changes) <> 'object' THEN
        RAISE EXCEPTION 'preferences must be a JSON object'
            USING ERRCODE = 'WH008', HINT = 'Pass e.g. {"language": "pt-BR", "notifications_enabled": false}.';
    END IF;
    FOR v_key IN SELECT jsonb_object_keys(p_changes) LOOP
        IF NOT c_types ? v_key THEN
            RAISE EXCEPTION 'unknown preference %', quote_literal(left(v_key, 64))
                USING ERRCODE = 'WH008', HINT = 'Known preferences: notifications_enabled, language, timezone, delay_threshold_minutes, auto_claim.';
        END IF;
        IF jsonb_typeof(p_changes -> v_key) <> c_types ->> v_key THEN
            RAISE EXCEPTION 'preference % must be a JSON %', v_key, c_types ->> v_key
                USING ERRCODE = 'WH008', HINT = 'Send the value with its JSON type, e.g. true rather than "true".';
        END IF;
    END LOOP;
    IF p_changes ? 'timezone' AND NOT EXISTS (SELECT FROM pg_timezone_names WHERE name = p_changes ->> 'timezone') THEN
        RAISE EXCEPTION 'unknown time zone %', quote_literal(left(p_changes ->> 'timezone', 64))
            USING ERRCODE = 'WH008', HINT = 'Use an IANA name such as Europe/London.';
    END IF;
    IF p_changes ? 'delay_threshold_minutes'
       AND NOT ((p_changes ->> 'delay_threshold_minutes')::numeric BETWEEN 0 AND 1440
                AND (p_changes ->> 'delay_threshold_minutes')::numeric % 1 = 0) THEN
        RAISE EXCEPTION 'delay_threshold_minutes must be a whole number from 0 to 1440'
            USING ERRCODE = 'WH008', HINT = 'E.g. {"delay_threshold_minutes": 15}.';
    END IF;

    PERFORM _lock_user(p_user_id);
    SELECT to_jsonb(p) - 'user_id' - 'updated_at' INTO v_before FROM user_preferences p WHERE user_id = p_user_id;
    UPDATE user_preferences p SET
        notifications_enabled   = coalesce((p_changes ->> 'notifications_enabled')::boolean, p.notifications_enabled),
        language                = coalesce(p_changes ->> 'language', p.language),
        timezone                = coalesce(p_changes ->> 'timezone', p.timezone),
        delay_threshold_minutes = coalesce((p_changes ->> 'delay_threshold_minutes')::integer, p.delay_threshold_minutes),
        auto_claim              = coalesce((p_changes ->> 'auto_claim')::boolean, p.auto_claim),
        updated_at              = now()
    WHERE p.user_id = p_user_id
    RETURNING to_jsonb(p) - 'user_id' - 'updated_at' INTO v_after;

    SELECT coalesce(jsonb_object_agg(a.key, a.value), '{}') INTO v_changed
    FROM jsonb_each(v_after) a WHERE v_before -> a.key IS DISTINCT FROM a.value;
    IF v_changed <> '{}' THEN
        PERFORM _emit_event('user.preferences_updated', p_user_id, jsonb_build_object('changed', v_changed));
    END IF;
    RETURN v_after;
EXCEPTION WHEN check_violation THEN
    RAISE EXCEPTION 'invalid preference value: %', SQLERRM
        USING ERRCODE = 'WH008', HINT = 'language is a tag such as en-GB or pt-BR.';
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler.set_user_preferences(bigint, jsonb) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler.set_user_preferences(bigint, jsonb) IS
    'Applies a partial update of preferences (keys: notifications_enabled, language, timezone, delay_threshold_minutes, auto_claim) and returns them all; emits user.preferences_updated with the changed values, nothing when nothing changed. Raises WH008 unknown key, wrong JSON type or bad value, WH002 unknown user, WH009 erased, WH004 blocked.';

COMMIT;
