-- Deploy whatsapp_handler:core/roles to pg
-- The five NOLOGIN group roles, and the login pg_cron runs the jobs as. Role names are
-- cluster-wide, so an existing role (another database of the same cluster deployed first)
-- is reused, not recreated.
BEGIN;

DO $$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['whatsapp_handler_owner', 'whatsapp_handler_relay',
                             'whatsapp_handler_worker', 'whatsapp_handler_analyst',
                             'whatsapp_handler_consumer'] LOOP
        IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = r) THEN
            EXECUTE format('CREATE ROLE %I NOLOGIN', r);
        END IF;
    END LOOP;
    -- pg_cron runs a job as a role that can log in; the owner cannot, and the deploying
    -- superuser must not (a job function an owner's member redefined would run as it). This
    -- login holds nothing but USAGE and EXECUTE on the jobs (jobs/jobs); no password: pg_cron's
    -- background workers make no libpq login (docs/jobs.md for the libpq case).
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'whatsapp_handler_cron') THEN
        CREATE ROLE whatsapp_handler_cron LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;
    END IF;
END
$$;

COMMENT ON ROLE whatsapp_handler_owner IS 'Owns every whatsapp_handler object; SECURITY DEFINER functions run as it. Never a login.';
COMMENT ON ROLE whatsapp_handler_relay IS 'The webhook relay and OTP API: executes the API functions granted to it, reads and writes no table.';
COMMENT ON ROLE whatsapp_handler_worker IS 'The delivery worker: reads the outbound queue and executes the worker functions.';
COMMENT ON ROLE whatsapp_handler_analyst IS 'Analysts: read the analytics schema only.';
COMMENT ON ROLE whatsapp_handler_cron IS 'The login pg_cron runs the whatsapp-handler jobs as: EXECUTE on the job functions, nothing else; never a superuser, no password needed with cron.use_background_workers.';
COMMENT ON ROLE whatsapp_handler_consumer IS 'The business''s services: read and acknowledge domain events on the outbox through the outbox_* functions.';

COMMIT;
