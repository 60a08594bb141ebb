-- Revert whatsapp_handler:analytics/analyst_guard from pg
BEGIN;
\ir ../kept.sql

DROP FUNCTION whatsapp_handler.job_analyst_guard();
WITH gone AS (DELETE FROM whatsapp_handler.settings WHERE key = 'analyst.max_transaction' RETURNING *)
SELECT whatsapp_handler_kept.keep('setting', jsonb_agg(to_jsonb(gone))) FROM gone;

-- Cluster-wide, like the role: kept while another database of the cluster uses the owner
-- (as core/readiness keeps pg_read_all_stats).
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_shdepend
                   WHERE refobjid = 'whatsapp_handler_owner'::regrole
                     AND dbid NOT IN (0, (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database()))) THEN
        REVOKE pg_signal_backend FROM whatsapp_handler_owner;
    ELSE
        RAISE NOTICE 'whatsapp_handler_owner stays in pg_signal_backend: other databases of this cluster use the role';
    END IF;
END
$$;

COMMIT;
