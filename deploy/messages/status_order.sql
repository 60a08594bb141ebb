-- Deploy whatsapp_handler:messages/status_order to pg
-- requires: messages/messages outbox/event_envelope core/assert_function
-- The one rule of an outbound message's status. Reworked after v1.0.0: "failed" no longer
-- overrides "delivered" or "read". A person with several devices (a phone and WhatsApp
-- Web, a companion phone) gets one message on each, and the provider may report a failure
-- for one and a delivery for another, in either order: the message reached the person,
-- so it counts as delivered (or read), whatever came last. The order is therefore
--   queued < sent < failed < delivered < read
-- (_status_rank): a status moves the message only to a later rank, so a failure moves a
-- queued or sent message, a delivery moves a failed one (the failure was one device's),
-- and a failure after a delivery or a read is kept in message_status_events and in the
-- analytics' failures by error code, but moves nothing and announces nothing. Both the
-- provider's status webhooks (_record_status) and the worker (worker_sent's catch-up,
-- worker_dead_letter) move a status through here, so message.status_changed has one
-- payload (now with the provider's pricing) and is emitted once per move.
BEGIN;
SET LOCAL ROLE whatsapp_handler_owner;

-- The order as a number: the message_status enum's own order (failed last) is the
-- released one and stays, for what sorts by it; the rule reads this rank instead. A SQL
-- expression without a search_path, so that it is inlined where it is called.
CREATE FUNCTION whatsapp_handler._status_rank(p_status whatsapp_handler.message_status)
RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT CASE p_status::text
        WHEN 'queued' THEN 1 WHEN 'sent' THEN 2 WHEN 'failed' THEN 3 WHEN 'delivered' THEN 4 WHEN 'read' THEN 5
        ELSE 0
    END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler._status_rank(whatsapp_handler.message_status) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler._status_rank(whatsapp_handler.message_status) IS
    'Internal: the rank of an outbound message''s status in the order queued < sent < failed < delivered < read (0 for received): a status moves a message only to a higher rank (_advance_status). Raises nothing.';

CREATE FUNCTION whatsapp_handler._advance_status(p_message_id bigint, p_created_at timestamptz,
                                                 p_status whatsapp_handler.message_status, p_at timestamptz,
                                                 p_provider_message_id text, p_errors jsonb, p_channel_id bigint,
                                                 p_pricing jsonb)
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
    -- so a late "sent" never overwrites "read", a failure of one device never overwrites
    -- another's delivery, and a repeated report emits no second event.
    IF NOT FOUND OR _status_rank(v_previous) >= _status_rank(p_status) THEN
        RETURN false;
    END IF;
    UPDATE messages SET status = p_status, status_at = coalesce(p_at, now())
    WHERE id = p_message_id AND created_at = p_created_at;
    PERFORM _emit_event('message.status_changed', v_user_id,
        jsonb_build_object('message_id', p_message_id, 'channel_id', p_channel_id,
                           'provider_message_id', p_provider_message_id, 'status', p_status,
                           'previous_status', v_previous, 'occurred_at', p_at,
                           'errors', nullif(p_errors, 'null'), 'pricing', nullif(p_pricing, 'null')));
    RETURN true;
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler._advance_status(bigint, timestamptz, whatsapp_handler.message_status, timestamptz, text, jsonb, bigint, jsonb) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler._advance_status(bigint, timestamptz, whatsapp_handler.message_status, timestamptz, text, jsonb, bigint, jsonb) IS
    'Internal: moves an outbound message to p_status (status_at p_at, or now when NULL) only when it ranks later in the order queued < sent < failed < delivered < read (_status_rank: a failure never overrides a delivery or a read), and then emits message.status_changed with the provider''s errors and pricing; returns whether it moved. Raises nothing.';

-- The released signature, for the callers that report no pricing (the worker's catch-up
-- and dead letters): the same rule, through the one body above.
CREATE OR REPLACE FUNCTION whatsapp_handler._advance_status(p_message_id bigint, p_created_at timestamptz,
                                                            p_status whatsapp_handler.message_status, p_at timestamptz,
                                                            p_provider_message_id text, p_errors jsonb, p_channel_id bigint)
RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
BEGIN
    RETURN _advance_status(p_message_id, p_created_at, p_status, p_at, p_provider_message_id, p_errors, p_channel_id,
                           NULL::jsonb);
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler._advance_status(bigint, timestamptz, whatsapp_handler.message_status, timestamptz, text, jsonb, bigint) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler._advance_status(bigint, timestamptz, whatsapp_handler.message_status, timestamptz, text, jsonb, bigint) IS
    'Internal: _advance_status without pricing (the worker''s callers): moves an outbound message forward in the order queued < sent < failed < delivered < read and emits message.status_changed; returns whether it moved. Raises nothing.';

COMMIT;
