-- Verify whatsapp_handler:queue/dead_letters on pg
BEGIN;

SELECT 1 / (count(*) = 2)::int FROM pgmq.meta WHERE queue_name IN ('outbox_dlq', 'outbound_dlq');
SELECT 1 / (count(*) = 4)::int FROM pg_catalog.pg_class
WHERE oid IN ('pgmq.q_outbox_dlq'::regclass, 'pgmq.a_outbox_dlq'::regclass,
              'pgmq.q_outbound_dlq'::regclass, 'pgmq.a_outbound_dlq'::regclass)
  AND relowner = 'whatsapp_handler_owner'::regrole;

-- Only the owner holds a right on the queue's tables and sequence (pg_monitor, PUBLIC and
-- every other role none): pgmq's default privileges were revoked.
SELECT 1 / (count(*) = 0)::int FROM whatsapp_handler._queue_rights_beyond_owner(ARRAY['outbox_dlq', 'outbound_dlq']);

SELECT whatsapp_handler._assert_function('whatsapp_handler._dead_letter_outbound(jsonb, jsonb)', '{}');
SELECT whatsapp_handler._assert_function('whatsapp_handler._dead_letter_outbox(integer)', '{}');
SELECT whatsapp_handler._assert_function('whatsapp_handler._replay_outbox_letters(bigint[])', '{}');
SELECT whatsapp_handler._assert_function('whatsapp_handler._outbound_letters_due(integer, bigint[], interval, interval)', '{}');
SELECT whatsapp_handler._assert_function('whatsapp_handler._park_outbound_letter(bigint)', '{}');
SELECT 1 / (count(*) = 1)::int FROM pg_catalog.pg_indexes
WHERE schemaname = 'pgmq' AND tablename = 'q_outbox' AND indexname = 'q_outbox_reread_idx';

ROLLBACK;
