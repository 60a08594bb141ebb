-- Revert whatsapp_handler:core/pg_cron from pg
-- Dropping pg_cron drops every job in cron.job: only done when no job is left.
BEGIN;

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_extension WHERE extname = 'pg_cron') THEN
        RETURN;
    END IF;
    IF EXISTS (SELECT FROM cron.job) THEN
        RAISE NOTICE 'extension pg_cron kept: cron.job still holds jobs that are not this project''s';
        RETURN;
    END IF;
    DROP EXTENSION pg_cron;
END
$$;

COMMIT;
