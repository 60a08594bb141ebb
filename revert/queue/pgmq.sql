-- Revert whatsapp_handler:queue/pgmq from pg
-- The extension is dropped only when no queue is left in it (dropping it drops every
-- queue). A SQL-only install is not this change's to remove: it was there before.
BEGIN;

REVOKE SELECT ON pgmq.meta FROM whatsapp_handler_owner;
REVOKE USAGE ON SCHEMA pgmq FROM whatsapp_handler_owner;

DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_catalog.pg_extension WHERE extname = 'pgmq')
       AND NOT EXISTS (SELECT FROM pgmq.meta) THEN
        DROP EXTENSION pgmq;
    END IF;
END
$$;

COMMIT;
