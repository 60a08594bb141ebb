-- Verify whatsapp_handler:core/vacuum_metrics on pg
BEGIN;

SELECT whatsapp_handler._assert_function('whatsapp_handler.vacuum_metrics()', '{whatsapp_handler_relay}');
-- Every queue's table and archive, and every hot table, is reported.
SELECT 1 / (count(*) FILTER (WHERE table_name = 'pgmq.q_outbound') = 1
            AND count(*) FILTER (WHERE table_name = 'pgmq.a_outbox') = 1
            AND count(*) FILTER (WHERE table_name = 'whatsapp_handler.users') = 1
            AND count(*) FILTER (WHERE table_name LIKE 'whatsapp_handler.messages\_%') > 0)::int
FROM whatsapp_handler.vacuum_metrics();

ROLLBACK;
