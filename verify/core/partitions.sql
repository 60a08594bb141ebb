-- Verify whatsapp_handler:core/partitions on pg
BEGIN;

SELECT 1 / (NOT has_function_privilege('public', 'whatsapp_handler.create_partition(regclass, timestamptz, timestamptz)', 'execute'))::int;
SELECT 1 / count(*) FROM pg_catalog.pg_proc
WHERE oid = 'whatsapp_handler.create_partition(regclass, timestamptz, timestamptz)'::regprocedure
  AND prosecdef AND proconfig @> ARRAY['search_path=pg_catalog, whatsapp_handler, pg_temp'];
SELECT 1 / (NOT has_function_privilege('public', 'whatsapp_handler.create_partitions(regclass, text, integer)', 'execute'))::int;
SELECT 1 / count(*) FROM pg_catalog.pg_proc
WHERE oid = 'whatsapp_handler.create_partitions(regclass, text, integer)'::regprocedure AND prosecdef;
-- The version reworked after v1.0.0 gives each partition its table's autovacuum settings.
SELECT 1 / count(*) FROM pg_catalog.pg_proc
WHERE oid = 'whatsapp_handler.create_partition(regclass, timestamptz, timestamptz)'::regprocedure
  AND prosrc LIKE '%_set_autovacuum(%';

ROLLBACK;
