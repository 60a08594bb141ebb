-- Deploy whatsapp_handler:outbox/event_envelope to pg
-- requires: queue/outbox core/correlation_id core/pgcrypto
-- The envelope of every domain event (docs/events.md) and the group that keeps one
-- user's events in order, each written once: _emit_event queues one event with them,
-- ingest_batch's fast lane a whole batch of message.received (both through the queue
-- layer's _enqueue_outbox).
-- Reworked after v1.0.0: some events are about a channel, not a person (a template the
-- provider approved, paused or disabled: template.status_changed). The one envelope now
-- takes its aggregate (user or channel) and the released signature, a user's, calls it;
-- _emit_channel_event queues an event about a channel in a group of its own,
-- channel:<id>, so that pgmq's grouped reads keep one channel's events in order and no
-- user's group gains an event that is not theirs (an erasure purges a user's group).
BEGIN;
SET LOCAL ROLE whatsapp_handler_owner;

-- Bump "version" when a payload changes shape. A SQL expression without a search_path,
-- so that it is inlined where it is called; VOLATILE (the default), as gen_random_uuid
-- and clock_timestamp are: a STABLE declaration would stop the inlining.
CREATE FUNCTION whatsapp_handler._event_envelope(p_type text, p_aggregate_type text, p_aggregate_id bigint,
                                                 p_payload jsonb, p_correlation_id text)
RETURNS jsonb
LANGUAGE sql
AS $$
    SELECT pg_catalog.jsonb_build_object(
        'event_id', pg_catalog.gen_random_uuid(),
        'type', p_type,
        'version', 1,
        'occurred_at', pg_catalog.clock_timestamp(),
        'aggregate_type', p_aggregate_type,
        'aggregate_id', p_aggregate_id,
        'correlation_id', p_correlation_id,
        'payload', coalesce(p_payload, '{}'::jsonb))
$$;
REVOKE ALL ON FUNCTION whatsapp_handler._event_envelope(text, text, bigint, jsonb, text) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler._event_envelope(text, text, bigint, jsonb, text) IS
    'Internal: the outbox envelope of one domain event about an aggregate, user or channel (event_id, type, version, occurred_at, aggregate_type, aggregate_id, correlation_id, payload; docs/events.md). Raises nothing.';

-- A user's event, the released signature: inlined, and so is the call it makes.
CREATE OR REPLACE FUNCTION whatsapp_handler._event_envelope(p_type text, p_user_id bigint, p_payload jsonb, p_correlation_id text)
RETURNS jsonb
LANGUAGE sql
AS $$
    SELECT whatsapp_handler._event_envelope(p_type, 'user', p_user_id, p_payload, p_correlation_id)
$$;
REVOKE ALL ON FUNCTION whatsapp_handler._event_envelope(text, bigint, jsonb, text) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler._event_envelope(text, bigint, jsonb, text) IS
    'Internal: the outbox envelope of one domain event about a user (aggregate_type user; docs/events.md). Raises nothing.';

-- Internal: called only by the owner's SECURITY DEFINER functions, in their transaction.
CREATE FUNCTION whatsapp_handler._emit_channel_event(p_type text, p_channel_id bigint, p_payload jsonb DEFAULT '{}')
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
DECLARE
    v_msg_id bigint;
BEGIN
    IF p_type !~ '^[a-z_]+(\.[a-z_]+)+$' THEN
        RAISE EXCEPTION 'malformed event type %', p_type USING ERRCODE = 'WH008',
            HINT = 'An event type is dotted lower-case words, e.g. template.status_changed.';
    END IF;
    SELECT q INTO v_msg_id
    FROM _enqueue_outbox(ARRAY[_event_envelope(p_type, 'channel', p_channel_id, p_payload, correlation_id())],
                         ARRAY['channel:' || p_channel_id]) q;
    RETURN v_msg_id;
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler._emit_channel_event(text, bigint, jsonb) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler._emit_channel_event(text, bigint, jsonb) IS
    'Internal: queues one domain event about a channel (aggregate_type channel, aggregate_id the channel, group channel:<id>) on pgmq queue outbox in the caller''s transaction; returns the pgmq msg_id. Raises WH008 for a malformed type.';

COMMIT;
