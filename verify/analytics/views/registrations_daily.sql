-- Verify whatsapp_handler:analytics/views/registrations_daily on pg
BEGIN;

SELECT day, channel_id, registrations FROM analytics.registrations_daily WHERE false;
SELECT whatsapp_handler._assert_analytics_view('analytics.registrations_daily');

ROLLBACK;
