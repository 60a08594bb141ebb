-- Deploy whatsapp_handler:analytics/analyst_guard to pg
-- requires: jobs/settings core/roles core/readiness
-- job_analyst_guard: ends analysts' sessions whose transaction has been open too long.
-- add_analyst puts statement and idle-in-transaction timeouts on each login, but
-- PostgreSQL lets any role SET them in its own session (or ALTER ROLE itself SET them),
-- so they cannot be the last word: a transaction held open on the primary stops vacuum
-- and bloats the queue tables. This job is, and an analyst cannot lift it.
BEGIN;

-- To end other roles' sessions (never a superuser's: PostgreSQL refuses that to
-- pg_signal_backend). Only this function, which picks analysts only, uses it.
GRANT pg_signal_backend TO whatsapp_handler_owner;

SET LOCAL ROLE whatsapp_handler_owner;

INSERT INTO whatsapp_handler.settings (key, value, description) VALUES
    ('analyst.max_transaction', '"5 minutes"',
     'The analyst guard job ends an analyst''s session whose transaction (a query, or a transaction left idle) has been open longer than this (at least 1 second; the job runs every minute, so a transaction may live up to a minute longer).');

CREATE FUNCTION whatsapp_handler.job_analyst_guard()
RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
DECLARE
    v_limit interval := _setting_interval('analyst.max_transaction', interval '1 second');
    v_ended jsonb;
BEGIN
    -- Members of the analyst group (directly or not) that are neither superusers nor the
    -- owner's members; pg_signal_backend could not end a superuser's session anyway.
    SELECT coalesce(jsonb_agg(jsonb_build_object('pid', a.pid, 'login', a.usename,
                                                 'open_seconds', round(extract(epoch FROM now() - a.xact_start)),
                                                 'ended', pg_terminate_backend(a.pid))), '[]')
    INTO v_ended
    FROM pg_stat_activity a
    JOIN pg_roles r ON r.oid = a.usesysid
    WHERE a.xact_start < now() - v_limit
      AND a.datname = current_database()
      AND a.pid <> pg_backend_pid()
      AND pg_has_role(r.oid, 'whatsapp_handler_analyst', 'member')
      AND NOT pg_has_role(r.oid, 'whatsapp_handler_owner', 'member')
      AND NOT r.rolsuper;
    RETURN jsonb_build_object('limit', v_limit::text, 'sessions', v_ended);
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler.job_analyst_guard() FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler.job_analyst_guard() IS
    'pg_cron (job analyst_guard, every minute): ends the sessions of analyst logins in this database whose transaction has been open longer than analyst.max_transaction, which the analysts cannot lift (unlike their statement and idle-in-transaction timeouts). Returns {"limit", "sessions": [{pid, login, open_seconds, ended}]}. Raises WH011 or WH020 when analyst.max_transaction is missing or not an interval of at least a second.';

COMMIT;
