-- Verify whatsapp_handler:queue/pgmq on pg
BEGIN;

SELECT 1 / (count(DISTINCT p.proname) = 6)::int FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname = 'pgmq' AND p.proname IN ('send', 'read', 'archive', 'delete', 'create', 'metrics');
SELECT 1 / (has_schema_privilege('whatsapp_handler_owner', 'pgmq', 'usage'))::int;

ROLLBACK;
