-- Deploy whatsapp_handler:queue/dlq_operators to pg
-- Reworked after v1.0.0: dlq_purge leaves a row of the dead-letter history (queue/dead_letter_history)
-- naming the login and the letters it deleted. Only dlq_purge changed: _dlq_name, dlq_counts
-- and dlq_letters are as deploy/queue/dlq_operators@v1.0.0.sql made them.
-- requires: queue/dead_letter_history
BEGIN;
SET LOCAL ROLE whatsapp_handler_owner;

CREATE OR REPLACE FUNCTION whatsapp_handler.dlq_purge(p_queue text, p_msg_ids bigint[] DEFAULT NULL)
RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
DECLARE
    v_results jsonb;
    v_ids     bigint[];
BEGIN
    -- NULL purges every letter of the queue; an empty array none.
    SELECT coalesce(jsonb_agg(jsonb_build_object('msg_id', d.msg_id, 'result', 'purged', 'channel_id', d.channel_id)
                              ORDER BY d.msg_id), '[]'), coalesce(array_agg(d.msg_id), '{}')
    INTO v_results, v_ids
    FROM _delete_dead_letters(p_queue, p_msg_ids) d;
    PERFORM _dead_letter_log('purge', p_queue, 'dlq_purge', jsonb_build_object(
        'purged', cardinality(v_ids),
        'not_found', to_jsonb(ARRAY(SELECT DISTINCT i FROM unnest(p_msg_ids) i WHERE i <> ALL (v_ids) ORDER BY i)),
        'results', v_results));
    RETURN cardinality(v_ids);
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler.dlq_purge(text, bigint[]) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler.dlq_purge(text, bigint[]) IS
    'Operators (`whatsapp-handler dlq purge`): deletes these letters of one dead-letter queue for good (NULL: all of them), and writes a purge row of the dead-letter history naming the login, the letters deleted and those named but not found. Returns how many were deleted. Raises WH024 for an unknown queue.';

COMMIT;
