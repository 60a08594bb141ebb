-- Deploy whatsapp_handler:role_groups to pg
-- The five NOLOGIN group roles. Role names are cluster-wide, so an existing role
-- (another database of the same cluster deployed first) is reused, not recreated.
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
END
$$;

COMMENT ON ROLE whatsapp_handler_owner IS 'Owns every whatsapp_handler object; SECURITY DEFINER functions run as it. Never a login.';
COMMENT ON ROLE whatsapp_handler_relay IS 'The webhook relay and OTP API: executes the API functions granted to it, reads and writes no table.';
COMMENT ON ROLE whatsapp_handler_worker IS 'The delivery worker: reads the outbound queue and executes the worker functions.';
COMMENT ON ROLE whatsapp_handler_analyst IS 'Analysts: read the analytics schema only.';
COMMENT ON ROLE whatsapp_handler_consumer IS 'The business''s services: read and acknowledge domain events on the outbox through the outbox_* functions.';

COMMIT;
