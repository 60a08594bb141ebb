-- Verify whatsapp_handler:core/autovacuum on pg
BEGIN;

SELECT whatsapp_handler._assert_function('whatsapp_handler._autovacuum_hot_tables()', '{}');
SELECT whatsapp_handler._assert_function('whatsapp_handler._set_autovacuum(regclass)', '{}');
SELECT whatsapp_handler._assert_function('whatsapp_handler._autovacuum_tables()', '{}');
-- Every hot table (each partition of a partitioned one) holds its parameters.
SELECT 1 / (count(*) > 0 AND count(*) FILTER (WHERE NOT coalesce(c.reloptions, '{}') @> t.options) = 0)::int
FROM whatsapp_handler._autovacuum_tables() t JOIN pg_catalog.pg_class c ON c.oid = t.relation;

ROLLBACK;
