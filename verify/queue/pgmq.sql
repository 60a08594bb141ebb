-- Verify whatsapp_handler:queue/pgmq on pg
BEGIN;

SELECT 1 / (count(DISTINCT p.proname) = 6)::int FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname = 'pgmq' AND p.proname IN ('send', 'read', 'archive', 'delete', 'create', 'metrics');
SELECT 1 / (has_schema_privilege('whatsapp_handler_owner', 'pgmq', 'usage'))::int;
-- The queue layer writes pgmq's headers and last_read_at columns (queue/heads, queue/archive),
-- which older pgmq lacks: say so here rather than fail at the first claim.
DO $$
BEGIN
    IF (SELECT count(*) FROM pg_catalog.pg_attribute a
        JOIN pg_catalog.pg_type t ON t.typrelid = a.attrelid
        JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace
        WHERE n.nspname = 'pgmq' AND t.typname = 'message_record'
          AND a.attname IN ('headers', 'last_read_at') AND NOT a.attisdropped) <> 2 THEN
        RAISE EXCEPTION 'pgmq is too old: its messages lack headers or last_read_at'
            USING HINT = 'Install pgmq 1.8.1 or newer (the SQL-only install of the pgmq Python package bin/setup installs is 1.13).';
    END IF;
END
$$;

ROLLBACK;
