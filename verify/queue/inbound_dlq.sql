-- Verify whatsapp_handler:queue/inbound_dlq on pg
BEGIN;

SELECT 1 / count(*) FROM pgmq.meta WHERE queue_name = 'inbound_dlq';
SELECT 1 / (count(*) = 2)::int FROM pg_catalog.pg_class
WHERE oid IN ('pgmq.q_inbound_dlq'::regclass, 'pgmq.a_inbound_dlq'::regclass) AND relowner = 'whatsapp_handler_owner'::regrole;

-- Only the owner holds a right on the queue's tables and sequence (pg_monitor, PUBLIC and
-- every other role none): pgmq's default privileges were revoked.
SELECT 1 / (count(*) = 0)::int FROM whatsapp_handler._queue_rights_beyond_owner(ARRAY['inbound_dlq']);

SELECT whatsapp_handler._assert_function('whatsapp_handler._dead_letter_inbound(jsonb)', '{}');
SELECT whatsapp_handler._assert_function('whatsapp_handler._dead_letter_channel()', '{}');
SELECT 1 / count(*) FROM pg_catalog.pg_trigger
WHERE tgrelid = 'pgmq.q_inbound_dlq'::regclass AND tgname = 'inbound_dlq_channel'
  AND tgfoid = 'whatsapp_handler._dead_letter_channel()'::regprocedure AND tgenabled <> 'D';
SELECT whatsapp_handler._assert_function('whatsapp_handler._purge_inbound_letters(text[])', '{}');
SELECT whatsapp_handler._assert_function('whatsapp_handler._inbound_letters_due(integer, bigint[])', '{}');
SELECT whatsapp_handler._assert_function('whatsapp_handler._mark_inbound_letter(bigint, jsonb, interval)', '{}');
SELECT whatsapp_handler._assert_function('whatsapp_handler._archive_inbound_letter(bigint)', '{}');

ROLLBACK;
