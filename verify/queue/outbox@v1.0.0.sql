-- Verify whatsapp_handler:queue/outbox on pg
BEGIN;

SELECT 1 / count(*) FROM pgmq.meta WHERE queue_name = 'outbox';
SELECT 1 / (count(*) = 2)::int FROM pg_catalog.pg_class
WHERE oid IN ('pgmq.q_outbox'::regclass, 'pgmq.a_outbox'::regclass) AND relowner = 'whatsapp_handler_owner'::regrole;
SELECT 1 / (NOT has_table_privilege('whatsapp_handler_relay', 'pgmq.q_outbox', 'insert'))::int;

-- Only the owner holds a right on the queue's tables and sequence (pg_monitor, PUBLIC and
-- every other role none): pgmq's default privileges were revoked.
SELECT 1 / (count(*) = 0)::int FROM whatsapp_handler._queue_rights_beyond_owner(ARRAY['outbox']);

SELECT whatsapp_handler._assert_function('whatsapp_handler._enqueue_outbox(jsonb[], text[])', '{}');
SELECT whatsapp_handler._assert_function('whatsapp_handler._delay_outbox(bigint, integer)', '{}');

ROLLBACK;
