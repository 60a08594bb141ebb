-- Verify whatsapp_handler:analytics/onboarded on pg
BEGIN;

SELECT onboarded_on FROM whatsapp_handler.analytics_users WHERE false;
SELECT onboarded FROM whatsapp_handler.analytics_funnel_daily WHERE false;
SELECT day, channel_id, onboarded FROM whatsapp_handler.analytics_onboarded_daily WHERE false;
SELECT 1 / (to_regclass('whatsapp_handler.analytics_registrations_daily') IS NULL)::int;
-- The renamed summary keeps its row-level security and its policy, under the new name.
SELECT 1 / count(*) FROM pg_catalog.pg_class
WHERE oid = 'whatsapp_handler.analytics_onboarded_daily'::regclass AND relrowsecurity AND relforcerowsecurity;
SELECT 1 / count(*) FROM pg_catalog.pg_policies
WHERE schemaname = 'whatsapp_handler' AND tablename = 'analytics_onboarded_daily'
  AND policyname = 'analytics_onboarded_daily_channels' AND qual LIKE '%_visible_channels()%';

SELECT onboarded_on FROM analytics.users WHERE false;
SELECT onboarded FROM analytics.funnel_daily WHERE false;
SELECT day, channel_id, onboarded FROM analytics.onboarded_daily WHERE false;
SELECT 1 / (to_regclass('analytics.registrations_daily') IS NULL)::int;
SELECT whatsapp_handler._assert_analytics_view('analytics.users');
SELECT whatsapp_handler._assert_analytics_view('analytics.funnel_daily');
SELECT whatsapp_handler._assert_analytics_view('analytics.onboarded_daily');
-- No analytics column still says "registered" for onboarding (first contact is first_contact_on).
SELECT 1 / (count(*) = 0)::int FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_class c ON c.oid = a.attrelid
WHERE a.attnum > 0 AND NOT a.attisdropped AND a.attname ~ '^registr'
  AND (c.relnamespace = 'analytics'::regnamespace
       OR (c.relnamespace = 'whatsapp_handler'::regnamespace AND c.relname ~ '^analytics_'));

ROLLBACK;
