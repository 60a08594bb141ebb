-- Deploy whatsapp_handler:queue/groups to pg
-- Reworked after v1.0.0: erasure finds a dead letter by the channel of the message it wraps;
-- one statement for every table. This is the whole change as it is now, CREATE OR REPLACE
-- over the released functions (deploy/queue/groups@v1.0.0.sql runs first).
-- requires: queue/outbox queue/outbound queue/dead_letters core/assert_function
-- Everything a queue holds about one group (x-pgmq-group, user:<id>), for erasure: the
-- group indexes of the archives and the statements that purge a group from every queue
-- and archive, or redact the events it still has waiting. Which fields name a person and
-- when a person is erased stay with users/erase_user.
BEGIN;
SET LOCAL ROLE whatsapp_handler_owner;

CREATE OR REPLACE FUNCTION whatsapp_handler._purge_group(p_group text, p_channel_keys text[] DEFAULT NULL)
RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
DECLARE
    v_table text;
    v_path  text[];
    v_count integer;
    v_total integer := 0;
BEGIN
    -- One statement for every table: erasure is rare, so planning it per call costs nothing
    -- worth a copy per table. A message's channel is message.channel_id on the outbound
    -- queue and payload.channel_id in an event; a dead letter wraps the message it holds
    -- (message on outbound_dlq, event on outbox_dlq: queue/dead_letters).
    FOR v_table, v_path IN
        VALUES ('q_outbound', '{channel_id}'::text[]), ('a_outbound', '{channel_id}'), ('a_outbox', '{payload,channel_id}'),
               ('q_outbound_dlq', '{message,channel_id}'), ('a_outbound_dlq', '{message,channel_id}'),
               ('q_outbox_dlq', '{event,payload,channel_id}'), ('a_outbox_dlq', '{event,payload,channel_id}')
    LOOP
        EXECUTE format('DELETE FROM pgmq.%I WHERE headers ->> ''x-pgmq-group'' = $1 AND ($2 IS NULL OR message #>> $3 = ANY ($2))',
                       v_table)
        USING p_group, p_channel_keys, v_path;
        GET DIAGNOSTICS v_count = ROW_COUNT;
        v_total := v_total + v_count;
    END LOOP;
    RETURN v_total;
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler._purge_group(text, text[]) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler._purge_group(text, text[]) IS
    'Internal: deletes the messages of x-pgmq-group p_group waiting on outbound, outbound_dlq and outbox_dlq and archived on outbound, outbox, outbound_dlq and outbox_dlq (the outbox itself is redacted, not purged: _redact_group_events), only those whose channel_id (message.channel_id, payload.channel_id of an event, inside the message or event a dead letter holds) is one of p_channel_keys when given; returns how many. Raises nothing.';

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
