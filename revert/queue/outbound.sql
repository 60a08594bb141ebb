-- Revert whatsapp_handler:queue/outbound from pg
-- Puts back the functions as v1.0.0 released them (deploy/queue/outbound@v1.0.0.sql).
BEGIN;
-- The queue's one writer: pgmq.send's dynamic SQL is planned on every call, this static
-- INSERT once per session. Triggers pgmq adds to the table (enable_notify_insert) still fire.
SET LOCAL ROLE whatsapp_handler_owner;

DROP FUNCTION whatsapp_handler._lock_outbound(bigint[]);
DROP FUNCTION whatsapp_handler._delete_outbound(bigint[]);

CREATE OR REPLACE FUNCTION whatsapp_handler._enqueue_outbound(p_message jsonb, p_group text)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
DECLARE
    v_msg_id bigint;
BEGIN
    INSERT INTO pgmq.q_outbound (vt, message, headers)
    -- No group (NULL) leaves the headers empty: such a message waits behind no other.
    VALUES (clock_timestamp(), p_message, jsonb_strip_nulls(jsonb_build_object('x-pgmq-group', p_group)))
    RETURNING msg_id INTO v_msg_id;
    RETURN v_msg_id;
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler._enqueue_outbound(jsonb, text) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler._enqueue_outbound(jsonb, text) IS
    'Internal: queues one message to send, with header x-pgmq-group p_group (the worker sends one group''s messages in order; NULL: no header), visible at once; returns its msg_id. Raises nothing.';

-- The settling of a claim (delivery/worker): the worker's state of a message is in its
-- headers (attempts, in_flight, last_error); its body stays as queued.

-- The queue row, locked, or a row of nulls when another worker settled it already (its
-- claim expired and it was claimed again): then this worker's outcome is stale.
CREATE OR REPLACE FUNCTION whatsapp_handler._lock_outbound(p_msg_id bigint)
RETURNS pgmq.q_outbound
LANGUAGE plpgsql
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
DECLARE
    v_row pgmq.q_outbound;
BEGIN
    SELECT * INTO v_row FROM pgmq.q_outbound WHERE msg_id = p_msg_id FOR UPDATE;
    RETURN v_row;
END
$$;

-- Deleted, not archived: an OTP code must not outlive its delivery, and a dead letter
-- keeps its own copy.
CREATE OR REPLACE FUNCTION whatsapp_handler._delete_outbound(p_msg_id bigint)
RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
BEGIN
    DELETE FROM pgmq.q_outbound WHERE msg_id = p_msg_id;
    RETURN FOUND;
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
    RETURN FOUND;
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
    RETURN FOUND;
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler._lock_outbound(bigint), whatsapp_handler._delete_outbound(bigint),
    whatsapp_handler._retry_outbound(bigint, double precision, jsonb),
    whatsapp_handler._release_outbound(bigint, double precision) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler._lock_outbound(bigint) IS
    'Internal: the outbound queue row of a pgmq msg_id, locked, or a row of nulls when it is gone. Raises nothing.';
COMMENT ON FUNCTION whatsapp_handler._delete_outbound(bigint) IS
    'Internal: deletes an outbound message without archiving it; returns false when it was gone. Raises nothing.';
COMMENT ON FUNCTION whatsapp_handler._retry_outbound(bigint, double precision, jsonb) IS
    'Internal: makes an outbound message visible again after p_delay_seconds, no longer in flight, with header last_error p_error; returns false when it is gone. Raises nothing.';
COMMENT ON FUNCTION whatsapp_handler._release_outbound(bigint, double precision) IS
    'Internal: makes a claimed outbound message visible again after p_delay_seconds (NULL or negative: at once), no longer in flight, and takes back the attempt its claim counted; returns false when it is gone. Raises nothing.';

COMMIT;
