-- Deploy whatsapp_handler:queue/outbound to pg
-- requires: queue/rights queue/pgmq core/roles
-- Messages to send. The worker reaches them only through the worker_* functions
-- (delivery/worker), which run as the owner: no table right here, so that a worker's login
-- can neither read the queued OTP codes nor rewrite or delete what waits.
BEGIN;

DO $$ BEGIN PERFORM pgmq.create('outbound'); END $$;
ALTER TABLE pgmq.q_outbound OWNER TO whatsapp_handler_owner;
ALTER TABLE pgmq.a_outbound OWNER TO whatsapp_handler_owner;
COMMENT ON TABLE pgmq.q_outbound IS 'whatsapp-handler messages waiting for delivery by the worker; OTP messages carry the plaintext code until deleted.';

-- Every right on the queue's tables and sequence goes but the owner's (queue/rights).
SELECT format('REVOKE ALL ON %s %s FROM %s', kind, relation, grantee)
FROM whatsapp_handler._queue_rights_beyond_owner(ARRAY['outbound']) \gexec

-- The queue's one writer: pgmq.send's dynamic SQL is planned on every call, this static
-- INSERT once per session. Triggers pgmq adds to the table (enable_notify_insert) still fire.
SET LOCAL ROLE whatsapp_handler_owner;

CREATE FUNCTION whatsapp_handler._enqueue_outbound(p_message jsonb, p_group text)
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

COMMIT;
