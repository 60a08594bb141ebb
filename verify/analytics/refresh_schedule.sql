-- Verify whatsapp_handler:analytics/refresh_schedule on pg
BEGIN;

SELECT 1 / count(*) FROM whatsapp_handler.jobs WHERE name = 'analytics_refresh' AND function = 'job_analytics_refresh';
SELECT 1 / (has_function_privilege('whatsapp_handler_cron', 'whatsapp_handler.job_analytics_refresh(timestamptz)', 'execute'))::int;

ROLLBACK;
