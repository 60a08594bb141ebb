-- Verify whatsapp_handler:analytics/views/channels on pg
BEGIN;

SELECT channel_id, name, provider, active, created_on FROM analytics.channels WHERE false;
SELECT whatsapp_handler._assert_analytics_view('analytics.channels');

ROLLBACK;
