-- Verify whatsapp_handler:fn_erase_user on pg
BEGIN;

SELECT whatsapp_handler._assert_function('whatsapp_handler.erase_user(bigint)', '{}');
SELECT 1 / (count(*) = 2)::int FROM pg_catalog.pg_indexes
WHERE schemaname = 'pgmq' AND indexname IN ('a_outbound_group_idx', 'a_outbox_group_idx');

ROLLBACK;
