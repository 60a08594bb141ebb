-- Revert whatsapp_handler:queue/groups from pg
-- Puts back the functions as v1.0.0 released them (deploy/queue/groups@v1.0.0.sql).
BEGIN;
SET LOCAL ROLE whatsapp_handler_owner;

CREATE OR REPLACE FUNCTION whatsapp_handler._purge_group(p_group text, p_channel_keys text[] DEFAULT NULL)
RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
DECLARE
    v_count integer;
    v_total integer := 0;
BEGIN
    -- The channel of a message is message.channel_id on outbound, message.payload.channel_id
    -- on outbox; the dead-letter queues are filtered by the same paths, as before.
    DELETE FROM pgmq.q_outbound
    WHERE headers ->> 'x-pgmq-group' = p_group AND (p_channel_keys IS NULL OR message ->> 'channel_id' = ANY (p_channel_keys));
    GET DIAGNOSTICS v_count = ROW_COUNT;
    v_total := v_total + v_count;
    DELETE FROM pgmq.a_outbound
    WHERE headers ->> 'x-pgmq-group' = p_group AND (p_channel_keys IS NULL OR message ->> 'channel_id' = ANY (p_channel_keys));
    GET DIAGNOSTICS v_count = ROW_COUNT;
    v_total := v_total + v_count;
    DELETE FROM pgmq.a_outbox
    WHERE headers ->> 'x-pgmq-group' = p_group
      AND (p_channel_keys IS NULL OR message #>> '{payload,channel_id}' = ANY (p_channel_keys));
    GET DIAGNOSTICS v_count = ROW_COUNT;
    v_total := v_total + v_count;
    DELETE FROM pgmq.q_outbound_dlq
    WHERE headers ->> 'x-pgmq-group' = p_group AND (p_channel_keys IS NULL OR message ->> 'channel_id' = ANY (p_channel_keys));
    GET DIAGNOSTICS v_count = ROW_COUNT;
    v_total := v_total + v_count;
    DELETE FROM pgmq.a_outbound_dlq
    WHERE headers ->> 'x-pgmq-group' = p_group AND (p_channel_keys IS NULL OR message ->> 'channel_id' = ANY (p_channel_keys));
    GET DIAGNOSTICS v_count = ROW_COUNT;
    v_total := v_total + v_count;
    DELETE FROM pgmq.q_outbox_dlq
    WHERE headers ->> 'x-pgmq-group' = p_group
      AND (p_channel_keys IS NULL OR message #>> '{payload,channel_id}' = ANY (p_channel_keys));
    GET DIAGNOSTICS v_count = ROW_COUNT;
    v_total := v_total + v_count;
    DELETE FROM pgmq.a_outbox_dlq
    WHERE headers ->> 'x-pgmq-group' = p_group
      AND (p_channel_keys IS NULL OR message #>> '{payload,channel_id}' = ANY (p_channel_keys));
    GET DIAGNOSTICS v_count = ROW_COUNT;
    RETURN v_total + v_count;
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler._purge_group(text, text[]) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler._purge_group(text, text[]) IS
    'Internal: deletes the messages of x-pgmq-group p_group waiting on outbound, outbound_dlq and outbox_dlq and archived on outbound, outbox, outbound_dlq and outbox_dlq (the outbox itself is redacted, not purged: _redact_group_events), only those whose channel_id (message.channel_id, or message.payload.channel_id for events) is one of p_channel_keys when given; returns how many. Raises nothing.';

-- Events still waiting keep their place in the line (consumers see what follows them).
CREATE OR REPLACE FUNCTION whatsapp_handler._redact_group_events(p_group text, p_channel_keys text[], p_fields text[])
RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
DECLARE
    v_count integer;
BEGIN
    UPDATE pgmq.q_outbox
    SET message = jsonb_set(message, '{payload}', (message -> 'payload') - p_fields || jsonb_build_object('erased', true))
    WHERE headers ->> 'x-pgmq-group' = p_group
      AND jsonb_typeof(message -> 'payload') = 'object'
      AND (p_channel_keys IS NULL OR message #>> '{payload,channel_id}' = ANY (p_channel_keys))
      AND (message -> 'payload') ?| p_fields;
    GET DIAGNOSTICS v_count = ROW_COUNT;
    RETURN v_count;
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler._redact_group_events(text, text[], text[]) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler._redact_group_events(text, text[], text[]) IS
    'Internal: removes p_fields from the payloads of the events of x-pgmq-group p_group still waiting on the outbox (of the channels p_channel_keys, or all when NULL) that hold any of them, and marks them erased: true; returns how many. Raises nothing.';

COMMIT;
