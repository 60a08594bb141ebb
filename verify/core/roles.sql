-- Verify whatsapp_handler:core/roles on pg
BEGIN;

DO $$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['whatsapp_handler_owner', 'whatsapp_handler_relay',
                             'whatsapp_handler_worker', 'whatsapp_handler_analyst',
                             'whatsapp_handler_consumer'] LOOP
        IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles
                       WHERE rolname = r AND NOT rolcanlogin AND NOT rolsuper) THEN
            RAISE EXCEPTION 'role % is missing, can log in, or is a superuser', r;
        END IF;
    END LOOP;
    -- The jobs' login: can log in, holds no attribute above a plain login, is in no role.
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles
                   WHERE rolname = 'whatsapp_handler_cron' AND rolcanlogin AND NOT rolsuper AND NOT rolcreaterole
                     AND NOT rolcreatedb AND NOT rolreplication AND NOT rolbypassrls)
       OR EXISTS (SELECT FROM pg_catalog.pg_auth_members
                  WHERE member = 'whatsapp_handler_cron'::regrole) THEN
        RAISE EXCEPTION 'role whatsapp_handler_cron is missing, cannot log in, has more than a plain login''s attributes, or is a member of a role';
    END IF;
END
$$;

ROLLBACK;
