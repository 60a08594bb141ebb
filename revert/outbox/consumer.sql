-- Revert whatsapp_handler:outbox/consumer from pg
-- Puts back outbox_dlq_replay as v1.0.0 released it (deploy/outbox/consumer@v1.0.0.sql).
BEGIN;
SET LOCAL ROLE whatsapp_handler_owner;

CREATE OR REPLACE FUNCTION whatsapp_handler.outbox_dlq_replay(p_msg_ids bigint[])
RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
BEGIN
    RETURN _replay_outbox_letters(p_msg_ids);
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler.outbox_dlq_replay(bigint[]) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler.outbox_dlq_replay(bigint[]) IS
    'Operators: puts the events of these outbox_dlq letters back on the outbox (read count starting afresh) and deletes the letters. Returns how many went back. Raises nothing.';

COMMIT;
