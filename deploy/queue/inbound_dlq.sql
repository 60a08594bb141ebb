-- Deploy whatsapp_handler:queue/inbound_dlq to pg
-- requires: queue/rights queue/pgmq core/roles ingest/webhook_events
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

-- A letter names a raw webhook, not its channel: the channel is written into it as it is
-- queued, whoever queues it, so that analytics.dead_letters never reads webhook_events (a
-- partitioned table an analyst's open transaction would hold a lock on).
CREATE FUNCTION whatsapp_handler._dead_letter_channel()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
BEGIN
    IF NOT NEW.message ? 'channel_id' AND NEW.message ? 'webhook_event_id' THEN
        NEW.message := NEW.message || jsonb_build_object('channel_id',
            (SELECT w.channel_id FROM webhook_events w
              WHERE w.id = (NEW.message ->> 'webhook_event_id')::bigint
                AND w.received_at = (NEW.message ->> 'received_at')::timestamptz));
    END IF;
    RETURN NEW;
EXCEPTION WHEN data_exception THEN
    RETURN NEW;  -- a malformed pointer: the dead letter is kept as it came, of no known channel
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler._dead_letter_channel() FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler._dead_letter_channel() IS
    'Trigger of pgmq.q_inbound_dlq: adds channel_id (the stored webhook''s channel, null when unknown) to an inbound dead letter that has none, so that analytics.dead_letters never reads webhook_events. Raises nothing.';
CREATE TRIGGER inbound_dlq_channel BEFORE INSERT ON pgmq.q_inbound_dlq
FOR EACH ROW EXECUTE FUNCTION whatsapp_handler._dead_letter_channel();

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

-- The re-drive (jobs/redrive_inbound) takes letters one by one: the due ones, or the ones
-- an operator names whatever their state, locked for its transaction.
CREATE FUNCTION whatsapp_handler._inbound_letters_due(p_limit integer, p_msg_ids bigint[])
RETURNS TABLE (msg_id bigint, message jsonb)
LANGUAGE plpgsql
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    SELECT q.msg_id, q.message
    FROM pgmq.q_inbound_dlq q
    WHERE CASE WHEN p_msg_ids IS NULL
               THEN q.vt <= clock_timestamp() AND q.message -> 'parked' IS DISTINCT FROM 'true'::jsonb
               ELSE q.msg_id = ANY (p_msg_ids) END
    ORDER BY q.msg_id
    LIMIT CASE WHEN p_msg_ids IS NULL THEN p_limit END
    FOR UPDATE SKIP LOCKED;
END
$$;

-- A re-drive's outcome is kept in the letter itself (attempts, error, parked): the letter
-- takes these fields and is hidden for p_delay. Parking stamps parked_at once.
CREATE FUNCTION whatsapp_handler._mark_inbound_letter(p_msg_id bigint, p_fields jsonb, p_delay interval)
RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
BEGIN
    UPDATE pgmq.q_inbound_dlq
    SET message = message || p_fields
            || CASE WHEN p_fields -> 'parked' = 'true'::jsonb AND message -> 'parked' IS DISTINCT FROM 'true'::jsonb
                    THEN jsonb_build_object('parked_at', clock_timestamp()) ELSE '{}' END,
        vt = clock_timestamp() + p_delay
    WHERE msg_id = p_msg_id;
    RETURN FOUND;
END
$$;

-- A letter whose webhook is gone stays in the archive for a while, for a person to see.
CREATE FUNCTION whatsapp_handler._archive_inbound_letter(p_msg_id bigint)
RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
BEGIN
    RETURN pgmq.archive('inbound_dlq', p_msg_id);
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler._inbound_letters_due(integer, bigint[]),
    whatsapp_handler._mark_inbound_letter(bigint, jsonb, interval),
    whatsapp_handler._archive_inbound_letter(bigint) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler._inbound_letters_due(integer, bigint[]) IS
    'Internal: locks and returns (msg_id, message) of the inbound dead letters to re-drive, oldest first, skipping locked ones: without p_msg_ids up to p_limit visible letters not marked parked, with p_msg_ids exactly those. Raises nothing.';
COMMENT ON FUNCTION whatsapp_handler._mark_inbound_letter(bigint, jsonb, interval) IS
    'Internal: merges p_fields into an inbound dead letter (adding parked_at when p_fields parks a letter that was not parked) and makes it visible again after p_delay; returns false when it is gone. Raises nothing.';
COMMENT ON FUNCTION whatsapp_handler._archive_inbound_letter(bigint) IS
    'Internal: moves an inbound dead letter to the archive a_inbound_dlq (kept for the retention job); returns false when it is gone. Raises nothing.';

COMMIT;
