-- Verify whatsapp_handler:queue/autovacuum on pg
BEGIN;

SELECT whatsapp_handler._assert_function('whatsapp_handler._queue_autovacuum(text)', '{}');
SELECT whatsapp_handler._assert_function('whatsapp_handler._queue_autovacuum_options(text)', '{}');
SELECT whatsapp_handler._assert_function('whatsapp_handler._queue_tables()', '{}');
-- Every queue's table and archive holds its parameters.
SELECT 1 / (count(*) > 0 AND count(*) FILTER (
           WHERE NOT coalesce(c.reloptions, '{}') @> whatsapp_handler._queue_autovacuum_options(t.kind)) = 0)::int
FROM whatsapp_handler._queue_tables() t JOIN pg_catalog.pg_class c ON c.oid = t.relation;

ROLLBACK;
