"""The project's pg_cron jobs that are failing, as /metrics and `whatsapp-handler doctor` read
them. A module of its own so that the CLI can use it without importing prometheus_client,
which picks its multiprocess mode once, at import (before `serve` sets
PROMETHEUS_MULTIPROC_DIR for granian's workers)."""

# Per job of this project: its failed runs since its last successful one (0 when the last run
# succeeded), and the last failure's message. pg_cron's tables have row-level security: a login
# sees only the runs of the jobs it scheduled (a superuser all of them). The relay's own login
# sees none, and then whatsapp_cron_metrics_up is 0 (docs/runbook.md, "Alerts").
CRON_FAILURES = """
SELECT j.jobname,
       (SELECT count(*) FROM cron.job_run_details d
         WHERE d.jobid = j.jobid AND d.status = 'failed'
           AND d.runid > coalesce((SELECT max(s.runid) FROM cron.job_run_details s
                                    WHERE s.jobid = j.jobid AND s.status = 'succeeded'), 0)) AS failures,
       (SELECT d.return_message FROM cron.job_run_details d
         WHERE d.jobid = j.jobid AND d.status = 'failed' ORDER BY d.runid DESC LIMIT 1) AS last_message
FROM cron.job j
WHERE j.jobname LIKE 'whatsapp\\_handler.%' AND j.database = current_database()
ORDER BY j.jobname"""
