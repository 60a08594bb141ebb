-- Verify whatsapp_handler:analytics/analyst_guard_schedule on pg
BEGIN;

SELECT 1 / count(*) FROM whatsapp_handler.jobs WHERE name = 'analyst_guard' AND function = 'job_analyst_guard';
SELECT 1 / (has_function_privilege('whatsapp_handler_cron', 'whatsapp_handler.job_analyst_guard()', 'execute'))::int;

ROLLBACK;
