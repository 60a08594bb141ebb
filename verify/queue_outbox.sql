-- Verify whatsapp_handler:queue_outbox on pg
BEGIN;

SELECT 1 / count(*) FROM pgmq.meta WHERE queue_name = 'outbox';
SELECT 1 / (count(*) = 2)::int FROM pg_catalog.pg_class
WHERE oid IN ('pgmq.q_outbox'::regclass, 'pgmq.a_outbox'::regclass) AND relowner = 'whatsapp_handler_owner'::regrole;
SELECT 1 / (NOT has_table_privilege('whatsapp_handler_relay', 'pgmq.q_outbox', 'insert'))::int;

ROLLBACK;
