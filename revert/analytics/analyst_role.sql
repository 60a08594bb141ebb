-- Revert whatsapp_handler:analytics/analyst_role from pg
-- Role settings are cluster-wide, like the role: while another database of the cluster
-- still has objects of the project (a clone, a second deployment), its analysts rely on
-- them, so they stay, as core/roles keeps the roles themselves.
BEGIN;

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_shdepend
                   WHERE refobjid = 'whatsapp_handler_owner'::regrole
                     AND dbid NOT IN (0, (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database()))) THEN
        ALTER ROLE whatsapp_handler_analyst RESET statement_timeout;
        ALTER ROLE whatsapp_handler_analyst RESET idle_in_transaction_session_timeout;
        ALTER ROLE whatsapp_handler_analyst RESET default_transaction_read_only;
    ELSE
        RAISE NOTICE 'whatsapp_handler_analyst keeps its timeouts: other databases of this cluster use the project''s roles';
    END IF;
END
$$;

COMMIT;
