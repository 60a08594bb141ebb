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

# Per enabled job: its period (the longest wait its schedule allows; None when the schedule cannot be
# bounded), the seconds since it last started (or since it was enabled or rescheduled, if later),
# and whether that is more than twice the period (deploy/jobs/late_jobs.sql).
CRON_LATENESS = "SELECT job_name, period_seconds, age_seconds, overdue FROM whatsapp_handler.cron_job_lateness()"

# Per span (1h, 24h), provider and channel (None: unknown) with webhooks: how many, how many are failed
# now (dead-lettered, not re-driven), and the share not failed (deploy/ingest/success_rate.sql).
WEBHOOK_SUCCESS = (
    "SELECT span, provider, channel_id, webhooks, failed, success_ratio FROM whatsapp_handler.webhook_success_rate()"
)
