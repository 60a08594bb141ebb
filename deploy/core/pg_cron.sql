-- Deploy whatsapp_handler:core/pg_cron to pg
-- pg_cron can only be created in the database named by cron.database_name, and only
-- when it is preloaded; say so plainly instead of pg_cron's own error.
BEGIN;

DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_catalog.pg_extension WHERE extname = 'pg_cron') THEN
        RETURN;
    END IF;
    IF current_setting('cron.database_name', true) IS NULL THEN
        RAISE EXCEPTION 'pg_cron is not loaded by this server'
            USING ERRCODE = 'WH091',
                  HINT = 'Set shared_preload_libraries = ''pg_cron'' and cron.database_name = '''
                         || current_database() || ''' in postgresql.conf, then restart PostgreSQL.';
    END IF;
    IF current_setting('cron.database_name') <> current_database() THEN
        RAISE EXCEPTION 'pg_cron runs in database %, not in %',
                current_setting('cron.database_name'), current_database()
            USING ERRCODE = 'WH091',
                  HINT = 'Set cron.database_name = ''' || current_database()
                         || ''' in postgresql.conf and restart PostgreSQL, or deploy to that database.';
    END IF;
    CREATE EXTENSION pg_cron;
END
$$;

COMMIT;
