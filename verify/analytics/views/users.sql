-- Verify whatsapp_handler:analytics/views/users on pg
BEGIN;

SELECT user_key, channel_id, country_code, first_contact_on, terms_accepted_on, verified_on, registered_on, last_active_on, erased FROM analytics.users WHERE false;
SELECT whatsapp_handler._assert_analytics_view('analytics.users');

ROLLBACK;
