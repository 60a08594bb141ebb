-- Verify whatsapp_handler:core/pg_cron on pg
BEGIN;

SELECT 1 / count(*) FROM pg_catalog.pg_extension WHERE extname = 'pg_cron';
SELECT jobid, schedule, command, database, username, active FROM cron.job WHERE FALSE;

ROLLBACK;
