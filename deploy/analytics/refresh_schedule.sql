-- Deploy whatsapp_handler:analytics/refresh_schedule to pg
-- requires: jobs/jobs analytics/refresh
-- The analytics refresh as a row of whatsapp_handler.jobs (docs/jobs.md), scheduled by the
-- trigger for the jobs login whatsapp_handler_cron, as the other jobs are: every 10 minutes.
BEGIN;

-- Run by pg_cron as the jobs' login (docs/jobs.md).
GRANT EXECUTE ON FUNCTION whatsapp_handler.job_analytics_refresh(timestamptz) TO whatsapp_handler_cron;
INSERT INTO whatsapp_handler.jobs (name, function, schedule, description) VALUES
    ('analytics_refresh', 'job_analytics_refresh', '*/10 * * * *',
     'Recounts the analytics summaries behind the refreshed views of schema analytics (analytics.refresh_lookback; docs/analytics.md).');

COMMIT;
