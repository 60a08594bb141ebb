-- Verify whatsapp_handler:role_groups on pg
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
END
$$;

ROLLBACK;
