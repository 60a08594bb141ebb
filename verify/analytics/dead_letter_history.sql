-- Verify whatsapp_handler:analytics/dead_letter_history on pg
BEGIN;

SELECT day, queue, action, result, channel_id, run_by, runs, letters FROM analytics.dead_letter_history_daily WHERE false;
SELECT whatsapp_handler._assert_analytics_view('analytics.dead_letter_history_daily');

ROLLBACK;
