-- Deploy whatsapp_handler:outbox/event_envelope to pg
-- requires: queue/outbox core/correlation_id core/pgcrypto
BEGIN;
SET LOCAL ROLE whatsapp_handler_owner;

-- Internal: called only by the owner's SECURITY DEFINER functions, in their transaction.
CREATE FUNCTION whatsapp_handler._emit_event(p_type text, p_user_id bigint, p_payload jsonb DEFAULT '{}')
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
DECLARE
    v_msg_id bigint;
BEGIN
    IF p_type !~ '^[a-z_]+(\.[a-z_]+)+$' THEN
        RAISE EXCEPTION 'malformed event type %', p_type USING ERRCODE = 'WH008';
    END IF;
    -- The envelope is documented in docs/events.md; bump "version" when a payload changes shape.
    -- This is what pgmq.send('outbox', message, headers) does, written out: its dynamic
    -- SQL is planned on every call, a static INSERT once per session. Triggers pgmq adds
    -- to the table (enable_notify_insert) still fire.
    INSERT INTO pgmq.q_outbox (vt, message, headers)
    VALUES (
        clock_timestamp(),
        jsonb_build_object(
            'event_id', gen_random_uuid(),
            'type', p_type,
            'version', 1,
            'occurred_at', clock_timestamp(),
            'aggregate_type', 'user',
            'aggregate_id', p_user_id,
            'correlation_id', correlation_id(),
            'payload', coalesce(p_payload, '{}')),
        -- pgmq's grouped reads keep one user's events in order.
        jsonb_build_object('x-pgmq-group', 'user:' || p_user_id))
    RETURNING msg_id INTO v_msg_id;
    RETURN v_msg_id;
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler._emit_event(text, bigint, jsonb) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler._emit_event(text, bigint, jsonb) IS
    'Internal: queues one domain event about a user on pgmq queue outbox in the caller''s transaction; returns the pgmq msg_id. Raises WH008 for a malformed type.';

COMMIT;
