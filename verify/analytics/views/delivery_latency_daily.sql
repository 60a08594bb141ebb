-- Verify whatsapp_handler:analytics/views/delivery_latency_daily on pg
BEGIN;

SELECT day, channel_id, sent, delivered, read, failed, sent_to_delivered_p50, sent_to_delivered_p90, sent_to_delivered_p99, delivered_to_read_p50, delivered_to_read_p90, delivered_to_read_p99, sent_to_read_p50 FROM analytics.delivery_latency_daily WHERE false;
SELECT whatsapp_handler._assert_analytics_view('analytics.delivery_latency_daily');

ROLLBACK;
