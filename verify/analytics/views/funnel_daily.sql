-- Verify whatsapp_handler:analytics/views/funnel_daily on pg
BEGIN;

SELECT day, channel_id, first_contacts, terms_accepted, verified, registered, terms_accepted_rate, verified_rate FROM analytics.funnel_daily WHERE false;
SELECT whatsapp_handler._assert_analytics_view('analytics.funnel_daily');

ROLLBACK;
