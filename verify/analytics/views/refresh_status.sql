-- Verify whatsapp_handler:analytics/views/refresh_status on pg
BEGIN;

SELECT refreshed_at, covered_from, duration_seconds, age_seconds FROM analytics.refresh_status WHERE false;
SELECT whatsapp_handler._assert_analytics_view('analytics.refresh_status');

ROLLBACK;
