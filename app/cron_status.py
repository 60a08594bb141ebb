"""The project's pg_cron jobs that are failing, as /metrics and `whatsapp-handler doctor` read
them. A module of its own so that the CLI can use it without importing prometheus_client,
which picks its multiprocess mode once, at import (before `serve` sets
PROMETHEUS_MULTIPROC_DIR for granian's workers)."""

# Per enabled job of this project: whether it is in cron.job as a job of the jobs' login
# whatsapp_handler_cron, its failed runs since its last successful one (0 when the last run
# succeeded), and the last failure's message. pg_cron shows a job's runs only to the role it runs
# as; the function reads them through a helper owned by that login (deploy/jobs/cron_job_failures.sql),
# so the relay's login, or any login granted it, sees them.
CRON_FAILURES = "SELECT job_name, scheduled, failures, last_message FROM whatsapp_handler.cron_job_failures()"
