-- Verify whatsapp_handler:analytics/views/messages_daily on pg
BEGIN;

SELECT day, channel_id, direction, message_type, messages FROM analytics.messages_daily WHERE false;
SELECT whatsapp_handler._assert_analytics_view('analytics.messages_daily');

ROLLBACK;
