-- Verify whatsapp_handler:queue_inbound_dlq on pg
BEGIN;

SELECT 1 / count(*) FROM pgmq.meta WHERE queue_name = 'inbound_dlq';
SELECT 1 / (count(*) = 2)::int FROM pg_catalog.pg_class
WHERE oid IN ('pgmq.q_inbound_dlq'::regclass, 'pgmq.a_inbound_dlq'::regclass) AND relowner = 'whatsapp_handler_owner'::regrole;

ROLLBACK;
