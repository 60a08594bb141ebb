-- Verify whatsapp_handler:analytics/campaigns on pg
BEGIN;

SELECT campaign_id, name, channel_id, template, template_language, category, state, state_reason, created_at,
       state_changed_at, per_second, daily_budget, recipients, pending, queued, sent, delivered, read, failed, skipped,
       failed_by_reason, skipped_by_reason
FROM analytics.campaigns WHERE false;
SELECT whatsapp_handler._assert_analytics_view('analytics.campaigns');

ROLLBACK;
