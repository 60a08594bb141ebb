-- Deploy whatsapp_handler:queue/inbound_dlq to pg
-- requires: queue/rights queue/pgmq core/roles
-- Webhooks whose content could not be normalised: the raw event stays in
-- webhook_events (outcome failed); this queue points at it for the re-drive job.
BEGIN;

DO $$ BEGIN PERFORM pgmq.create('inbound_dlq'); END $$;
ALTER TABLE pgmq.q_inbound_dlq OWNER TO whatsapp_handler_owner;
ALTER TABLE pgmq.a_inbound_dlq OWNER TO whatsapp_handler_owner;
COMMENT ON TABLE pgmq.q_inbound_dlq IS 'whatsapp-handler inbound dead letters: {webhook_event_id, received_at, provider, sqlstate, error, correlation_id}.';

-- Every right on the queue's tables and sequence goes but the owner's (queue/rights).
SELECT format('REVOKE ALL ON %s %s FROM %s', kind, relation, grantee)
FROM whatsapp_handler._queue_rights_beyond_owner(ARRAY['inbound_dlq']) \gexec

-- The queue's one writer: pgmq.send's dynamic SQL is planned on every call, this static
-- INSERT once per session.
SET LOCAL ROLE whatsapp_handler_owner;

CREATE FUNCTION whatsapp_handler._dead_letter_inbound(p_letter jsonb)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
DECLARE
    v_msg_id bigint;
BEGIN
    -- No group header: the re-drive job takes letters one by one, in any order.
    INSERT INTO pgmq.q_inbound_dlq (vt, message)
    VALUES (clock_timestamp(), p_letter)
    RETURNING msg_id INTO v_msg_id;
    RETURN v_msg_id;
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler._dead_letter_inbound(jsonb) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler._dead_letter_inbound(jsonb) IS
    'Internal: queues one inbound dead letter ({webhook_event_id, received_at, provider, sqlstate, error, correlation_id}) for the re-drive job, visible at once; returns its msg_id. Raises nothing.';

-- Erasure: the letters (waiting and archived) of webhooks that were deleted point at
-- nothing, and a re-drive would find nothing.
CREATE FUNCTION whatsapp_handler._purge_inbound_letters(p_webhook_event_ids text[])
RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
DECLARE
    v_count    integer;
    v_archived integer;
BEGIN
    DELETE FROM pgmq.q_inbound_dlq WHERE message ->> 'webhook_event_id' = ANY (p_webhook_event_ids);
    GET DIAGNOSTICS v_count = ROW_COUNT;
    DELETE FROM pgmq.a_inbound_dlq WHERE message ->> 'webhook_event_id' = ANY (p_webhook_event_ids);
    GET DIAGNOSTICS v_archived = ROW_COUNT;
    RETURN v_count + v_archived;
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler._purge_inbound_letters(text[]) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler._purge_inbound_letters(text[]) IS
    'Internal: deletes the inbound dead letters, waiting and archived, of these webhook_events ids (as text); returns how many. Raises nothing.';

COMMIT;
