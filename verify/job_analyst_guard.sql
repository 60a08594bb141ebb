-- Verify whatsapp_handler:job_analyst_guard on pg
BEGIN;

SELECT 1 / count(*) FROM whatsapp_handler.jobs WHERE name = 'analyst_guard' AND function = 'job_analyst_guard';

ROLLBACK;
