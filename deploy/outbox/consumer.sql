-- Deploy whatsapp_handler:outbox/consumer to pg
-- Reworked after v1.0.0: outbox_dlq_replay leaves a replay row of the dead-letter history
-- (queue/dead_letter_history) naming the login, the letters it put back and those it did not
-- find. Only outbox_dlq_replay changed: the rest is as deploy/outbox/consumer@v1.0.0.sql made it.
-- requires: queue/dead_letter_history
BEGIN;
SET LOCAL ROLE whatsapp_handler_owner;

-- Operators (`whatsapp-handler dlq replay outbox`): the events go back on the outbox as
-- they were, each at the end of its user's line; consumers read them afresh. The letters are
-- locked first, so that the history names exactly those that went back.
CREATE OR REPLACE FUNCTION whatsapp_handler.outbox_dlq_replay(p_msg_ids bigint[])
RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
DECLARE
    v_ids     bigint[];
    v_results jsonb;
    v_count   integer;
BEGIN
    SELECT coalesce(array_agg(l.msg_id ORDER BY l.msg_id), '{}'),
           coalesce(jsonb_agg(jsonb_build_object('msg_id', l.msg_id, 'result', 'replayed', 'channel_id', l.channel_id)
                              ORDER BY l.msg_id), '[]')
    INTO v_ids, v_results
    FROM _lock_dead_letters('outbox_dlq', p_msg_ids) l;
    v_count := _replay_outbox_letters(v_ids);
    PERFORM _dead_letter_log('replay', 'outbox_dlq', 'outbox_dlq_replay', jsonb_build_object(
        'replayed', v_count,
        'not_found', to_jsonb(ARRAY(SELECT DISTINCT i FROM unnest(p_msg_ids) i WHERE i <> ALL (v_ids) ORDER BY i)),
        'results', v_results));
    RETURN v_count;
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler.outbox_dlq_replay(bigint[]) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler.outbox_dlq_replay(bigint[]) IS
    'Operators: puts the events of these outbox_dlq letters back on the outbox (read count starting afresh) and deletes the letters, and writes a replay row of the dead-letter history naming the login, the letters put back and those named but not found. Returns how many went back. Raises nothing.';

COMMIT;
