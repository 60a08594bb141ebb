-- Revert whatsapp_handler:core/roles from pg
-- A role still used by another database of this cluster (a clone of this one, or a
-- second deployment) cannot be dropped; it is kept and a NOTICE says so.
BEGIN;

DO $$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['whatsapp_handler_cron', 'whatsapp_handler_consumer', 'whatsapp_handler_analyst', 'whatsapp_handler_worker',
                             'whatsapp_handler_relay', 'whatsapp_handler_owner'] LOOP
        CONTINUE WHEN NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = r);
        BEGIN
            EXECUTE format('DROP ROLE %I', r);
        EXCEPTION WHEN dependent_objects_still_exist THEN
            RAISE NOTICE 'role % kept: other databases of this cluster still use it', r;
        END;
    END LOOP;
END
$$;

COMMIT;
