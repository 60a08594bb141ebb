-- Revert whatsapp_handler:fn_erase_user from pg
BEGIN;

DROP FUNCTION whatsapp_handler.erase_user(bigint);
DROP INDEX pgmq.a_outbox_group_idx;
DROP INDEX pgmq.a_outbound_group_idx;

COMMIT;
