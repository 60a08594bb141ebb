-- Verify whatsapp_handler:analytics/refresh on pg
BEGIN;

SELECT whatsapp_handler._assert_function('whatsapp_handler.job_analytics_refresh(timestamptz)', '{}');
SELECT 1 / count(*) FROM whatsapp_handler.settings WHERE key = 'analytics.refresh_lookback';
SELECT 1 / (whatsapp_handler._setting_interval('analytics.refresh_lookback', interval '1 day') IS NOT NULL)::int;
-- It counts onboarded users under the names analytics/onboarded gave the summaries.
SELECT 1 / (prosrc LIKE '%analytics_onboarded_daily%' AND prosrc NOT LIKE '%registered%')::int FROM pg_catalog.pg_proc
WHERE oid = 'whatsapp_handler.job_analytics_refresh(timestamptz)'::regprocedure;
-- It recounts the cost and failures of delivery (analytics/delivery_costs).
SELECT 1 / (prosrc LIKE '%_delivery_costs(v_day)%')::int FROM pg_catalog.pg_proc
WHERE oid = 'whatsapp_handler.job_analytics_refresh(timestamptz)'::regprocedure;

ROLLBACK;
