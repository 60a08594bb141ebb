-- Verify whatsapp_handler:analytics/summaries on pg
BEGIN;

-- The onboarding columns and table have the names v1.0.0 released or those analytics/onboarded
-- gave them (its verify checks those): what does not change is checked here.
SELECT user_id, channel_id, user_key, country_code, first_contact_on, terms_accepted_on, verified_on,
       last_active_on, erased FROM whatsapp_handler.analytics_users WHERE false;
SELECT day, channel_id, first_contacts, terms_accepted, verified FROM whatsapp_handler.analytics_funnel_daily WHERE false;
SELECT 1 / (count(*) = 2)::int FROM pg_catalog.pg_attribute
WHERE attrelid IN ('whatsapp_handler.analytics_users'::regclass, 'whatsapp_handler.analytics_funnel_daily'::regclass)
  AND attname IN ('registered_on', 'onboarded_on', 'registered', 'onboarded') AND NOT attisdropped;
SELECT 1 / (count(*) = 3)::int FROM pg_catalog.pg_attribute
WHERE attrelid = coalesce(to_regclass('whatsapp_handler.analytics_onboarded_daily'),
                          to_regclass('whatsapp_handler.analytics_registrations_daily'))
  AND attname IN ('day', 'channel_id', 'registrations', 'onboarded') AND NOT attisdropped;
SELECT day, channel_id, requested, verified, failed_attempts, locked, expired, superseded FROM whatsapp_handler.analytics_otp_daily WHERE false;
SELECT day, channel_id, direction, message_type, messages FROM whatsapp_handler.analytics_messages_daily WHERE false;
SELECT day, channel_id, sent, delivered, read, failed, sent_to_delivered_p50, sent_to_delivered_p90, sent_to_delivered_p99,
       delivered_to_read_p50, delivered_to_read_p90, delivered_to_read_p99, sent_to_read_p50
FROM whatsapp_handler.analytics_delivery_daily WHERE false;
SELECT period, period_start, channel_id, users FROM whatsapp_handler.analytics_active_users WHERE false;
SELECT refreshed_at, covered_from, duration FROM whatsapp_handler.analytics_refreshes WHERE false;
DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_class WHERE relnamespace = 'whatsapp_handler'::regnamespace AND relname ~ '^analytics_'
               AND relkind = 'r' AND relowner <> 'whatsapp_handler_owner'::regrole) THEN
        RAISE EXCEPTION 'an analytics summary table is not owned by whatsapp_handler_owner';
    END IF;
END
$$;

ROLLBACK;
