-- Deploy whatsapp_handler:messages/status_order to pg
-- requires: messages/messages outbox/event_envelope core/assert_function
-- The one rule of an outbound message's status: it only moves forward, in the order of
-- the message_status enum (queued < sent < delivered < read < failed). Both the
-- provider's status webhooks (_record_status) and the worker (worker_sent's catch-up,
-- worker_dead_letter) move a status through here, so message.status_changed has one
-- payload and is emitted once per move.
BEGIN;
SET LOCAL ROLE whatsapp_handler_owner;

CREATE FUNCTION whatsapp_handler._advance_status(p_message_id bigint, p_created_at timestamptz,
                                                 p_status whatsapp_handler.message_status, p_at timestamptz,
                                                 p_provider_message_id text, p_errors jsonb, p_channel_id bigint)
RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
DECLARE
    v_previous message_status;
    v_user_id  bigint;
BEGIN
    -- Locked first: two reports of one message (a webhook and the worker's catch-up)
    -- compare against the status the other one left.
    SELECT status, user_id INTO v_previous, v_user_id FROM messages
    WHERE id = p_message_id AND created_at = p_created_at AND direction = 'outbound' FOR UPDATE;
    -- Statuses arrive out of order and repeated: an equal or earlier one changes nothing,
    -- so a late "sent" never overwrites "read" and a repeated report emits no second event.
    IF NOT FOUND OR v_previous >= p_status THEN
        RETURN false;
    END IF;
    UPDATE messages SET status = p_status, status_at = coalesce(p_at, now())
    WHERE id = p_message_id AND created_at = p_created_at;
    PERFORM _emit_event('message.status_changed', v_user_id,
        jsonb_build_object('message_id', p_message_id, 'channel_id', p_channel_id,
                           'provider_message_id', p_provider_message_id, 'status', p_status,
                           'previous_status', v_previous, 'occurred_at', p_at, 'errors', p_errors));
    RETURN true;
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler._advance_status(bigint, timestamptz, whatsapp_handler.message_status, timestamptz, text, jsonb, bigint) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler._advance_status(bigint, timestamptz, whatsapp_handler.message_status, timestamptz, text, jsonb, bigint) IS
    'Internal: moves an outbound message to p_status (status_at p_at, or now when NULL) only when it is later in the order queued < sent < delivered < read < failed, and then emits message.status_changed; returns whether it moved. Raises nothing.';

COMMIT;
