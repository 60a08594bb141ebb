-- Verify whatsapp_handler:queue/groups on pg
BEGIN;

SELECT whatsapp_handler._assert_function('whatsapp_handler._purge_group(text, text[])', '{}');
SELECT whatsapp_handler._assert_function('whatsapp_handler._redact_group_events(text, text[], text[])', '{}');
SELECT 1 / (count(*) = 2)::int FROM pg_catalog.pg_indexes
WHERE schemaname = 'pgmq' AND indexname IN ('a_outbound_group_idx', 'a_outbox_group_idx');

ROLLBACK;
