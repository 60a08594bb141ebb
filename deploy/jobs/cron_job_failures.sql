-- Deploy whatsapp_handler:jobs/cron_job_failures to pg
-- requires: jobs/jobs
-- cron_job_failures(): the jobs' failed runs, for /metrics and doctor, whatever login asks.
-- pg_cron's row-level security shows a job and its runs only to the role it runs as, the
-- login whatsapp_handler_cron (jobs/jobs). So the runs are read by _cron_job_runs, which
-- that login owns (it reads nothing else: no table of the owner), and cron_job_failures,
-- the owner's, joins them to whatsapp_handler.jobs. No superuser owns either.
BEGIN;

CREATE FUNCTION whatsapp_handler._cron_job_runs()
RETURNS TABLE (job_name text, active boolean, failures bigint, last_message text)
LANGUAGE sql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
    SELECT c.jobname, c.active,
           (SELECT count(*) FROM cron.job_run_details d
             WHERE d.jobid = c.jobid AND d.status = 'failed'
               AND d.runid > coalesce((SELECT max(s.runid) FROM cron.job_run_details s
                                        WHERE s.jobid = c.jobid AND s.status = 'succeeded'), 0)),
           (SELECT d.return_message FROM cron.job_run_details d
             WHERE d.jobid = c.jobid AND d.status = 'failed' ORDER BY d.runid DESC LIMIT 1)
    FROM cron.job c
    WHERE c.username = current_user AND c.database = current_database()
      AND c.jobname LIKE 'whatsapp\_handler.%'
$$;
ALTER FUNCTION whatsapp_handler._cron_job_runs() OWNER TO whatsapp_handler_cron;
REVOKE ALL ON FUNCTION whatsapp_handler._cron_job_runs() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION whatsapp_handler._cron_job_runs() TO whatsapp_handler_owner;
COMMENT ON FUNCTION whatsapp_handler._cron_job_runs() IS
    'Internal (cron_job_failures): per job of whatsapp_handler_cron in this database named whatsapp_handler.*, whether it is active, its failed runs since its last successful one and the last failure''s message. Owned by whatsapp_handler_cron: pg_cron shows a role the runs of its own jobs only. Raises nothing.';

SET LOCAL ROLE whatsapp_handler_owner;
CREATE FUNCTION whatsapp_handler.cron_job_failures()
RETURNS TABLE (job_name text, scheduled boolean, failures bigint, last_message text)
LANGUAGE sql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
    SELECT j.cron_job_name, r.job_name IS NOT NULL, coalesce(r.failures, 0), r.last_message
    FROM jobs j
    LEFT JOIN _cron_job_runs() r ON r.job_name = j.cron_job_name
    WHERE j.enabled
    ORDER BY j.cron_job_name
$$;
REVOKE ALL ON FUNCTION whatsapp_handler.cron_job_failures() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION whatsapp_handler.cron_job_failures() TO whatsapp_handler_relay;
COMMENT ON FUNCTION whatsapp_handler.cron_job_failures() IS
    'For /metrics and doctor: per enabled job of whatsapp_handler.jobs, its pg_cron name, whether it is in cron.job for this database as a job of the login whatsapp_handler_cron (false: not scheduled, or scheduled for another role), its failed runs since its last successful one, and the last failure''s message. Raises nothing.';

COMMIT;
