-- Verify whatsapp_handler:analytics/views/funnel_daily on pg
BEGIN;

-- registered became onboarded (analytics/onboarded checks that name).
SELECT day, channel_id, first_contacts, terms_accepted, verified, terms_accepted_rate, verified_rate FROM analytics.funnel_daily WHERE false;
SELECT 1 / (count(*) = 1)::int FROM pg_catalog.pg_attribute
WHERE attrelid = 'analytics.funnel_daily'::regclass AND attname IN ('registered', 'onboarded') AND NOT attisdropped;
SELECT whatsapp_handler._assert_analytics_view('analytics.funnel_daily');

ROLLBACK;
