-- Deploy whatsapp_handler:queue/outbound to pg
-- Reworked after v1.0.0: a batch is locked and deleted by one statement each
-- (_lock_outbound, _delete_outbound take arrays), and a message put back for a retry or
-- released holds the messages behind it (_hold_followers, queue/heads), as a waiting head
-- holds a message queued behind it. This is the whole
-- change as it is now, CREATE OR REPLACE over the released functions
-- (deploy/queue/outbound@v1.0.0.sql runs first).
-- requires: queue/rights queue/pgmq core/roles queue/heads
-- Messages to send. The worker reaches them only through the worker_* functions
-- (delivery/worker), which run as the owner: no table right here, so that a worker's login
-- can neither read the queued OTP codes nor rewrite or delete what waits.
BEGIN;
-- The queue's one writer: pgmq.send's dynamic SQL is planned on every call, this static
-- INSERT once per session. Triggers pgmq adds to the table (enable_notify_insert) still fire.
SET LOCAL ROLE whatsapp_handler_owner;

-- Released with one msg_id each; the arrays below replace them (delivery/worker, reworked
-- next, calls the new ones: a worker settling in between retries, app/worker.py).
DROP FUNCTION whatsapp_handler._lock_outbound(bigint);
DROP FUNCTION whatsapp_handler._delete_outbound(bigint);

CREATE OR REPLACE FUNCTION whatsapp_handler._enqueue_outbound(p_message jsonb, p_group text)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
DECLARE
    v_msg_id bigint;
BEGIN
    INSERT INTO pgmq.q_outbound (vt, message, headers)
    -- No group (NULL) leaves the headers empty: such a message waits behind no other. Behind a
    -- head that waits (put back to its pacing turn, retried, released), the message waits with
    -- it, as _hold_followers holds those queued before (queue/heads): visible, it could not be
    -- claimed, yet every claim would walk it. Not behind a head in flight, which may be settled
    -- any moment. One probe of the group index.
    VALUES (greatest(clock_timestamp(),
                     (SELECT CASE WHEN coalesce((h.headers ->> 'in_flight')::boolean, false) THEN NULL ELSE h.vt END
                      FROM pgmq.q_outbound h WHERE h.headers ->> 'x-pgmq-group' = p_group ORDER BY h.msg_id LIMIT 1)),
            p_message, jsonb_strip_nulls(jsonb_build_object('x-pgmq-group', p_group)))
    RETURNING msg_id INTO v_msg_id;
    RETURN v_msg_id;
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler._enqueue_outbound(jsonb, text) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler._enqueue_outbound(jsonb, text) IS
    'Internal: queues one message to send, with header x-pgmq-group p_group (the worker sends one group''s messages in order; NULL: no header), visible at once, or when the group''s head becomes visible again if that head waits and is not in flight; returns its msg_id. Raises nothing.';

-- The settling of a claim (delivery/worker): the worker's state of a message is in its
-- headers (attempts, in_flight, last_error); its body stays as queued.

-- The queue rows, locked in msg_id order (two workers' settlings lock in the same order),
-- without those another worker settled already (its claim expired and it was claimed
-- again): this worker's outcome for them is stale. One statement for a whole batch.
-- A generic plan: with an array parameter the planner would otherwise plan every call
-- afresh (a custom plan for one id always looks cheaper than the generic one).
CREATE OR REPLACE FUNCTION whatsapp_handler._lock_outbound(p_msg_ids bigint[])
RETURNS TABLE (msg_id bigint, message jsonb, headers jsonb)
LANGUAGE plpgsql
SET search_path = pg_catalog, whatsapp_handler, pg_temp
SET plan_cache_mode = force_generic_plan
AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    SELECT q.msg_id, q.message, q.headers FROM pgmq.q_outbound q
    WHERE q.msg_id = ANY (p_msg_ids) ORDER BY q.msg_id FOR UPDATE;
END
$$;

-- Deleted, not archived: an OTP code must not outlive its delivery, and a dead letter
-- keeps its own copy.
CREATE OR REPLACE FUNCTION whatsapp_handler._delete_outbound(p_msg_ids bigint[])
RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, whatsapp_handler, pg_temp
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
    v_count integer;
BEGIN
    DELETE FROM pgmq.q_outbound WHERE msg_id = ANY (p_msg_ids);
    GET DIAGNOSTICS v_count = ROW_COUNT;
    RETURN v_count;
END
$$;

CREATE OR REPLACE FUNCTION whatsapp_handler._retry_outbound(p_msg_id bigint, p_delay_seconds double precision, p_error jsonb)
RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
BEGIN
    UPDATE pgmq.q_outbound
    SET vt = clock_timestamp() + make_interval(secs => p_delay_seconds),
        headers = headers || jsonb_build_object('in_flight', false, 'last_error', p_error)
    WHERE msg_id = p_msg_id;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    PERFORM _hold_followers(ARRAY[p_msg_id]);
    RETURN true;
END
$$;

-- Untried: the claim does not count as an attempt.
CREATE OR REPLACE FUNCTION whatsapp_handler._release_outbound(p_msg_id bigint, p_delay_seconds double precision)
RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
BEGIN
    UPDATE pgmq.q_outbound
    SET vt = clock_timestamp() + make_interval(secs => greatest(coalesce(p_delay_seconds, 0), 0)),
        headers = headers || jsonb_build_object('in_flight', false,
                                                'attempts', greatest(coalesce((headers ->> 'attempts')::integer, 1) - 1, 0))
    WHERE msg_id = p_msg_id;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    PERFORM _hold_followers(ARRAY[p_msg_id]);
    RETURN true;
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler._lock_outbound(bigint[]), whatsapp_handler._delete_outbound(bigint[]),
    whatsapp_handler._retry_outbound(bigint, double precision, jsonb),
    whatsapp_handler._release_outbound(bigint, double precision) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler._lock_outbound(bigint[]) IS
    'Internal: locks the outbound queue rows of these pgmq msg_ids in msg_id order and returns (msg_id, message, headers) of those still queued. Raises nothing.';
COMMENT ON FUNCTION whatsapp_handler._delete_outbound(bigint[]) IS
    'Internal: deletes these outbound messages without archiving them; returns how many were still queued. Raises nothing.';
COMMENT ON FUNCTION whatsapp_handler._retry_outbound(bigint, double precision, jsonb) IS
    'Internal: makes an outbound message visible again after p_delay_seconds, no longer in flight, with header last_error p_error, and the messages behind it with it (_hold_followers); returns false when it is gone. Raises nothing.';
COMMENT ON FUNCTION whatsapp_handler._release_outbound(bigint, double precision) IS
    'Internal: makes a claimed outbound message visible again after p_delay_seconds (NULL or negative: at once), no longer in flight, with the messages behind it (_hold_followers), and takes back the attempt its claim counted; returns false when it is gone. Raises nothing.';

COMMIT;
