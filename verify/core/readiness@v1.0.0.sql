-- Verify whatsapp_handler:core/readiness on pg
BEGIN;

SELECT whatsapp_handler._assert_function('whatsapp_handler.readiness(text)', '{whatsapp_handler_relay,whatsapp_handler_worker}');
SELECT whatsapp_handler._assert_function('whatsapp_handler.queue_metrics()', '{whatsapp_handler_relay,whatsapp_handler_worker}');
SELECT 1 / ((whatsapp_handler.readiness('core/roles') ->> 'plan')::boolean)::int;
SELECT 1 / pg_has_role('whatsapp_handler_owner', 'pg_read_all_stats', 'member')::int;

ROLLBACK;
