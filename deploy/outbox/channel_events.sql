-- Deploy whatsapp_handler:outbox/channel_events to pg
-- requires: outbox/event_envelope
-- Some events are about a channel, not a person: a template the provider approved, paused
-- or disabled (template.status_changed). They take the one envelope (_event_envelope) with
-- aggregate_type "channel", and a group of their own, channel:<id>, so that pgmq's grouped
-- reads keep one channel's events in order and no user's group gains an event that is not
-- theirs (an erasure purges a user's group; a channel's events name no person).
BEGIN;
SET LOCAL ROLE whatsapp_handler_owner;

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
    FROM _enqueue_outbox(ARRAY[_event_envelope(p_type, NULL, p_payload, correlation_id())
                               || jsonb_build_object('aggregate_type', 'channel', 'aggregate_id', p_channel_id)],
                         ARRAY['channel:' || p_channel_id]) q;
    RETURN v_msg_id;
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler._emit_channel_event(text, bigint, jsonb) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler._emit_channel_event(text, bigint, jsonb) IS
    'Internal: queues one domain event about a channel (aggregate_type channel, aggregate_id the channel, group channel:<id>) on pgmq queue outbox in the caller''s transaction; returns the pgmq msg_id. Raises WH008 for a malformed type.';

COMMIT;
