-- Verify whatsapp_handler:analytics/views/active_users on pg
BEGIN;

SELECT period, period_start, channel_id, users FROM analytics.active_users WHERE false;
SELECT whatsapp_handler._assert_analytics_view('analytics.active_users');

ROLLBACK;
