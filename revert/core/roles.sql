-- Revert whatsapp_handler:core/roles from pg
-- Roles are cluster-wide and outlive this database's objects:
-- - a group role granted to a login (the relay's, the worker's, a consumer's, an analyst's)
--   is kept: dropping it would drop those memberships, and after a redeploy every such
--   login would be refused (the relay answering 403 to every webhook). core/roles' deploy
--   creates a role only when it is missing, so a redeploy finds the kept role, and its
--   members, as they were;
-- - the jobs' login is kept when a DBA gave it a password (pg_cron over libpq, docs/jobs.md);
-- - a role still used by another database of this cluster (a clone of this one, or a
--   second deployment) cannot be dropped; it is kept too.
-- A NOTICE names each kept role and why; DROP ROLE it by hand to remove it after all.
BEGIN;

DO $$
DECLARE
    r text;
    v_members text;
BEGIN
    FOREACH r IN ARRAY ARRAY['whatsapp_handler_cron', 'whatsapp_handler_consumer', 'whatsapp_handler_analyst', 'whatsapp_handler_worker',
                             'whatsapp_handler_relay', 'whatsapp_handler_owner'] LOOP
        CONTINUE WHEN NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = r);
        SELECT string_agg(m.rolname, ', ' ORDER BY m.rolname) INTO v_members
        FROM pg_catalog.pg_auth_members a JOIN pg_catalog.pg_roles m ON m.oid = a.member
        WHERE a.roleid = r::regrole;
        IF v_members IS NOT NULL THEN
            RAISE NOTICE 'role % kept: granted to %, which would lose it (REVOKE % FROM ...; DROP ROLE % to remove it)',
                         r, v_members, r, r;
            CONTINUE;
        END IF;
        IF r = 'whatsapp_handler_cron'
           AND EXISTS (SELECT FROM pg_catalog.pg_authid WHERE rolname = r AND rolpassword IS NOT NULL) THEN
            RAISE NOTICE 'role % kept: it has a password (pg_cron logs in with it over libpq); DROP ROLE % to remove it', r, r;
            CONTINUE;
        END IF;
        BEGIN
            EXECUTE format('DROP ROLE %I', r);
        EXCEPTION WHEN dependent_objects_still_exist THEN
            RAISE NOTICE 'role % kept: other databases of this cluster still use it', r;
        END;
    END LOOP;
END
$$;

COMMIT;
