-- Verify whatsapp_handler:analytics/views/users on pg
BEGIN;

-- registered_on became onboarded_on (analytics/onboarded checks that name).
SELECT user_key, channel_id, country_code, first_contact_on, terms_accepted_on, verified_on, last_active_on, erased FROM analytics.users WHERE false;
SELECT 1 / (count(*) = 1)::int FROM pg_catalog.pg_attribute
WHERE attrelid = 'analytics.users'::regclass AND attname IN ('registered_on', 'onboarded_on') AND NOT attisdropped;
SELECT whatsapp_handler._assert_analytics_view('analytics.users');

ROLLBACK;
