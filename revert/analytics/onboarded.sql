-- Revert whatsapp_handler:analytics/onboarded from pg
-- The names and comments v1.0.0 released, with the counts.
BEGIN;
SET LOCAL ROLE whatsapp_handler_owner;

ALTER VIEW analytics.onboarded_daily RENAME COLUMN onboarded TO registrations;
ALTER VIEW analytics.onboarded_daily RENAME TO registrations_daily;
COMMENT ON VIEW analytics.registrations_daily IS 'REFRESHED every 10 minutes. Registrations completed per UTC day, counted once per user on the channel of the user''s first conversation.';
COMMENT ON COLUMN analytics.registrations_daily.day IS 'UTC day registration completed.';
COMMENT ON COLUMN analytics.registrations_daily.registrations IS 'Users whose registration completed that day.';

ALTER VIEW analytics.funnel_daily RENAME COLUMN onboarded TO registered;
COMMENT ON VIEW analytics.funnel_daily IS 'REFRESHED every 10 minutes. Registration funnel by cohort: users whose first contact on a channel was that UTC day, and how many of them have since accepted the terms, verified by OTP and completed registration.';
COMMENT ON COLUMN analytics.funnel_daily.registered IS 'Of them, those whose registration completed.';

ALTER VIEW analytics.users RENAME COLUMN onboarded_on TO registered_on;
COMMENT ON COLUMN analytics.users.registered_on IS 'UTC day registration completed (NULL: not yet).';

ALTER POLICY analytics_onboarded_daily_channels ON whatsapp_handler.analytics_onboarded_daily
    RENAME TO analytics_registrations_daily_channels;
ALTER TABLE whatsapp_handler.analytics_onboarded_daily RENAME CONSTRAINT analytics_onboarded_daily_pkey TO analytics_registrations_daily_pkey;
ALTER TABLE whatsapp_handler.analytics_onboarded_daily RENAME COLUMN onboarded TO registrations;
ALTER TABLE whatsapp_handler.analytics_onboarded_daily RENAME TO analytics_registrations_daily;
COMMENT ON TABLE whatsapp_handler.analytics_registrations_daily IS 'Registrations completed per UTC day, on the channel of the user''s first conversation.';
COMMENT ON COLUMN whatsapp_handler.analytics_registrations_daily.day IS 'UTC day registration completed.';
COMMENT ON COLUMN whatsapp_handler.analytics_registrations_daily.registrations IS 'Users whose registration completed that day.';

ALTER TABLE whatsapp_handler.analytics_funnel_daily RENAME COLUMN onboarded TO registered;
COMMENT ON TABLE whatsapp_handler.analytics_funnel_daily IS 'Registration funnel per cohort: users whose conversation on a channel began that UTC day, and how many of them have since accepted the terms, verified, registered.';
COMMENT ON COLUMN whatsapp_handler.analytics_funnel_daily.registered IS 'Of them, those whose registration completed.';

ALTER TABLE whatsapp_handler.analytics_users RENAME COLUMN onboarded_on TO registered_on;
COMMENT ON COLUMN whatsapp_handler.analytics_users.registered_on IS 'UTC day registration completed (terms and verification).';

COMMIT;
