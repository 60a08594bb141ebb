-- Revert whatsapp_handler:queue/dlq_operators from pg
-- Puts back dlq_purge as v1.0.0 released it (deploy/queue/dlq_operators@v1.0.0.sql).
BEGIN;
SET LOCAL ROLE whatsapp_handler_owner;

CREATE OR REPLACE FUNCTION whatsapp_handler.dlq_purge(p_queue text, p_msg_ids bigint[] DEFAULT NULL)
RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
DECLARE
    v_count integer;
BEGIN
    -- NULL purges every letter of the queue; an empty array none.
    CASE _dlq_name(p_queue)
    WHEN 'inbound_dlq' THEN
        DELETE FROM pgmq.q_inbound_dlq WHERE p_msg_ids IS NULL OR msg_id = ANY (p_msg_ids);
    WHEN 'outbound_dlq' THEN
        DELETE FROM pgmq.q_outbound_dlq WHERE p_msg_ids IS NULL OR msg_id = ANY (p_msg_ids);
    ELSE
        DELETE FROM pgmq.q_outbox_dlq WHERE p_msg_ids IS NULL OR msg_id = ANY (p_msg_ids);
    END CASE;
    GET DIAGNOSTICS v_count = ROW_COUNT;
    RETURN v_count;
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler.dlq_purge(text, bigint[]) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler.dlq_purge(text, bigint[]) IS
    'Operators (`whatsapp-handler dlq purge`): deletes these letters of one dead-letter queue for good (NULL: all of them). Returns how many were deleted. Raises WH024 for an unknown queue.';

COMMIT;
