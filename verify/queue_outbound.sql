-- Verify whatsapp_handler:queue_outbound on pg
BEGIN;

SELECT 1 / count(*) FROM pgmq.meta WHERE queue_name = 'outbound';
SELECT 1 / has_table_privilege('whatsapp_handler_worker', 'pgmq.q_outbound', 'update')::int;
SELECT 1 / (NOT has_table_privilege('whatsapp_handler_worker', 'pgmq.q_outbound', 'insert'))::int;
SELECT 1 / (NOT has_table_privilege('whatsapp_handler_relay', 'pgmq.q_outbound', 'select'))::int;

ROLLBACK;
