-- Verify whatsapp_handler:queue/dead_letter_history on pg
BEGIN;

SELECT id, created_at, login, job, action, queue, msg_ids, outcome FROM whatsapp_handler.dead_letter_history WHERE false;
SELECT 1 / count(*) FROM whatsapp_handler.settings WHERE key = 'retention.dead_letter_history';
SELECT 1 / (pg_catalog.pg_get_userbyid(relowner) = 'whatsapp_handler_owner')::int
FROM pg_catalog.pg_class WHERE oid = 'whatsapp_handler.dead_letter_history'::regclass;
SELECT 1 / count(*) FROM pg_catalog.pg_index
WHERE indexrelid = 'whatsapp_handler.dead_letter_history_created_at'::regclass
  AND indrelid = 'whatsapp_handler.dead_letter_history'::regclass;
SELECT 1 / count(*) FROM pg_catalog.pg_index
WHERE indexrelid = 'whatsapp_handler.dead_letter_history_queue'::regclass
  AND indrelid = 'whatsapp_handler.dead_letter_history'::regclass;
-- Operators read it through dlq_history; no service role, analyst or PUBLIC reads the table.
SELECT 1 / (NOT has_table_privilege(r, 'whatsapp_handler.dead_letter_history', 'select'))::int
FROM unnest(ARRAY['whatsapp_handler_relay', 'whatsapp_handler_worker', 'whatsapp_handler_consumer',
                  'whatsapp_handler_analyst', 'whatsapp_handler_cron']) r;
SELECT whatsapp_handler._assert_function('whatsapp_handler._letter_channel_id(text, jsonb)', '{}');
SELECT whatsapp_handler._assert_function('whatsapp_handler._delete_dead_letters(text, bigint[])', '{}');
SELECT whatsapp_handler._assert_function('whatsapp_handler._lock_dead_letters(text, bigint[])', '{}');
SELECT whatsapp_handler._assert_function('whatsapp_handler._dead_letter_log(text, text, text, jsonb)', '{}');
SELECT whatsapp_handler._assert_function('whatsapp_handler.dlq_history(text, integer)', '{}');
SELECT whatsapp_handler._assert_function('whatsapp_handler.dead_letter_history_metrics()', '{whatsapp_handler_relay}');

ROLLBACK;
