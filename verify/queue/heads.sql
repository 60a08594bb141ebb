-- Verify whatsapp_handler:queue/heads on pg
BEGIN;

SELECT whatsapp_handler._assert_function('whatsapp_handler._heads_outbound(integer, bigint[])', '{}');
SELECT whatsapp_handler._assert_function('whatsapp_handler._heads_outbox(integer, bigint[])', '{}');
SELECT whatsapp_handler._assert_function('whatsapp_handler._claim_outbound(integer, integer, bigint[])', '{}');
SELECT whatsapp_handler._assert_function('whatsapp_handler._claim_outbox(integer, integer)', '{}');
SELECT whatsapp_handler._assert_function('whatsapp_handler._hold_followers(bigint[])', '{}');
SELECT 1 / (count(*) = 2)::int FROM pg_catalog.pg_indexes
WHERE schemaname = 'pgmq' AND indexname IN ('q_outbound_group_idx', 'q_outbox_group_idx');

ROLLBACK;
