-- Revert whatsapp_handler:core/readiness from pg
BEGIN;

DROP FUNCTION whatsapp_handler.queue_metrics();
DROP FUNCTION whatsapp_handler.readiness(text);
REVOKE SELECT ON sqitch.changes FROM whatsapp_handler_owner;
REVOKE USAGE ON SCHEMA sqitch FROM whatsapp_handler_owner;

-- Role membership is cluster-wide, like the role: while another database of the
-- cluster still has objects of the owner (a clone, a second deployment), its
-- readiness() needs it, so it stays, as core/roles keeps the role itself.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_shdepend
                   WHERE refobjid = 'whatsapp_handler_owner'::regrole
                     AND dbid NOT IN (0, (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database()))) THEN
        REVOKE pg_read_all_stats FROM whatsapp_handler_owner;
    ELSE
        RAISE NOTICE 'whatsapp_handler_owner stays in pg_read_all_stats: other databases of this cluster use the role';
    END IF;
END
$$;

COMMIT;
