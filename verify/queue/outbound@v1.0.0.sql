-- Verify whatsapp_handler:queue/outbound on pg
BEGIN;

SELECT 1 / count(*) FROM pgmq.meta WHERE queue_name = 'outbound';
-- The worker reaches the queue through its functions only (any right listed here is one too many).
SELECT 1 / (NOT has_table_privilege('whatsapp_handler_worker', 'pgmq.q_outbound', 'select, insert, update, delete'))::int;
SELECT 1 / (NOT has_table_privilege('whatsapp_handler_worker', 'pgmq.a_outbound', 'select, insert, update, delete'))::int;
SELECT 1 / (NOT has_table_privilege('whatsapp_handler_relay', 'pgmq.q_outbound', 'select'))::int;

-- Only the owner holds a right on the queue's tables and sequence (pg_monitor, PUBLIC and
-- every other role none): pgmq's default privileges were revoked.
SELECT 1 / (count(*) = 0)::int FROM whatsapp_handler._queue_rights_beyond_owner(ARRAY['outbound']);

SELECT whatsapp_handler._assert_function('whatsapp_handler._enqueue_outbound(jsonb, text)', '{}');
SELECT whatsapp_handler._assert_function('whatsapp_handler._lock_outbound(bigint)', '{}');
SELECT whatsapp_handler._assert_function('whatsapp_handler._delete_outbound(bigint)', '{}');
SELECT whatsapp_handler._assert_function('whatsapp_handler._retry_outbound(bigint, double precision, jsonb)', '{}');
SELECT whatsapp_handler._assert_function('whatsapp_handler._release_outbound(bigint, double precision)', '{}');

ROLLBACK;
