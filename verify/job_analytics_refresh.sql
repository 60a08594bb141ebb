-- Verify whatsapp_handler:job_analytics_refresh on pg
BEGIN;

SELECT 1 / count(*) FROM whatsapp_handler.jobs WHERE name = 'analytics_refresh' AND function = 'job_analytics_refresh';

ROLLBACK;
