-- Deploy whatsapp_handler:fn_cron_job_failures to pg
-- requires: table_jobs
-- The one function that whatsapp_handler_owner does not own. pg_cron's row-level security
-- shows a job and its runs only to the role that scheduled it, and pg_cron runs a job as that
-- role, so the jobs belong to the login that deploys (table_jobs' trigger), never to the
-- NOLOGIN owner. Created without SET ROLE, this function belongs to that login too, and
-- /metrics and doctor see the jobs' failures through it whatever login they use.
BEGIN;

CREATE FUNCTION whatsapp_handler.cron_job_failures()
RETURNS TABLE (job_name text, scheduled boolean, failures bigint, last_message text)
LANGUAGE sql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
    SELECT j.cron_job_name, c.jobid IS NOT NULL,
           (SELECT count(*) FROM cron.job_run_details d
             WHERE d.jobid = c.jobid AND d.status = 'failed'
               AND d.runid > coalesce((SELECT max(s.runid) FROM cron.job_run_details s
                                        WHERE s.jobid = c.jobid AND s.status = 'succeeded'), 0)),
           (SELECT d.return_message FROM cron.job_run_details d
             WHERE d.jobid = c.jobid AND d.status = 'failed' ORDER BY d.runid DESC LIMIT 1)
    FROM jobs j
    LEFT JOIN cron.job c ON c.jobname = j.cron_job_name AND c.database = current_database()
    WHERE j.enabled
    ORDER BY j.cron_job_name
$$;
REVOKE ALL ON FUNCTION whatsapp_handler.cron_job_failures() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION whatsapp_handler.cron_job_failures() TO whatsapp_handler_relay;
COMMENT ON FUNCTION whatsapp_handler.cron_job_failures() IS
    'For /metrics and doctor: per enabled job of whatsapp_handler.jobs, its pg_cron name, whether its owner (the login that deployed and scheduled the jobs) sees it in cron.job for this database (false: scheduled by another login, or not at all), its failed runs since its last successful one, and the last failure''s message. Owned by the deploying login, not by whatsapp_handler_owner: pg_cron shows runs only to their scheduler. Raises nothing.';

COMMIT;
