-- Revert whatsapp_handler:queue/heads from pg
BEGIN;

DROP FUNCTION whatsapp_handler._claim_outbox(integer, integer);
DROP FUNCTION whatsapp_handler._claim_outbound(integer, integer, bigint[]);
DROP FUNCTION whatsapp_handler._heads_outbox(integer, bigint[]);
DROP FUNCTION whatsapp_handler._heads_outbound(integer, bigint[]);
DROP INDEX pgmq.q_outbox_group_idx;
DROP INDEX pgmq.q_outbound_group_idx;

COMMIT;
