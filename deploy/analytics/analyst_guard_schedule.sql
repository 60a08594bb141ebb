-- Deploy whatsapp_handler:analytics/analyst_guard_schedule to pg
-- requires: jobs/jobs analytics/analyst_guard
-- The analyst guard as a row of whatsapp_handler.jobs (docs/jobs.md): every minute.
BEGIN;

-- Run by pg_cron as the jobs' login (docs/jobs.md).
GRANT EXECUTE ON FUNCTION whatsapp_handler.job_analyst_guard() TO whatsapp_handler_cron;
INSERT INTO whatsapp_handler.jobs (name, function, schedule, description) VALUES
    ('analyst_guard', 'job_analyst_guard', '* * * * *',
     'Ends analyst sessions whose transaction has been open longer than analyst.max_transaction (docs/analytics.md).');

COMMIT;
