-- Deploy whatsapp_handler:queue/pgmq to pg
-- pgmq is taken as it is found: the extension, or its SQL-only install (a pgmq schema
-- put there by a DBA or by `whatsapp-handler db deploy`). When neither is there and
-- the server ships the extension, it is created here.
BEGIN;

DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_catalog.pg_extension WHERE extname = 'pgmq') THEN
        NULL;
    ELSIF to_regprocedure('pgmq.send(text,jsonb,jsonb,timestamp with time zone)') IS NOT NULL THEN
        NULL;  -- SQL-only install
    ELSIF EXISTS (SELECT FROM pg_catalog.pg_available_extensions WHERE name = 'pgmq') THEN
        CREATE EXTENSION pgmq;
    ELSE
        RAISE EXCEPTION 'pgmq is neither an available extension nor installed in this database'
            USING ERRCODE = 'WH092',
                  HINT = 'Install the pgmq extension on the server, or load its SQL-only install '
                         || '(psql -f pgmq.sql from the pgmq Python package), or deploy with '
                         || '`whatsapp-handler db deploy`, which does that for you.';
    END IF;
END
$$;

GRANT USAGE ON SCHEMA pgmq TO whatsapp_handler_owner;
-- The owner lists queues (pgmq.meta) to report their depth.
GRANT SELECT ON pgmq.meta TO whatsapp_handler_owner;

COMMIT;
