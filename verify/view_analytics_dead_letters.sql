-- Verify whatsapp_handler:view_analytics_dead_letters on pg
BEGIN;

SELECT queue, channel_id, messages, oldest_enqueued_at, oldest_age_seconds, newest_enqueued_at FROM analytics.dead_letters WHERE false;
SELECT whatsapp_handler._assert_analytics_view('analytics.dead_letters');

ROLLBACK;
