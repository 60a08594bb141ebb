-- Deploy whatsapp_handler:analytics/onboarded to pg
-- requires: analytics/summaries analytics/summaries_policy analytics/views/users
-- requires: analytics/views/funnel_daily analytics/views/registrations_daily
-- "Registered" means first contact (register_user, user.registered); what the analytics
-- counted as registered is terms accepted and phone verified, now "onboarded" as in
-- users.onboarded_at (users/onboarded). Summary tables, policy and views are renamed in
-- place: the counts stay, the views keep their rights, row-level security and barrier.
-- job_analytics_refresh still names the old columns until analytics/refresh, reworked
-- next, takes the new ones (a refresh in between fails; pg_cron runs the next one).
BEGIN;
SET LOCAL ROLE whatsapp_handler_owner;

ALTER TABLE whatsapp_handler.analytics_users RENAME COLUMN registered_on TO onboarded_on;
COMMENT ON COLUMN whatsapp_handler.analytics_users.onboarded_on IS 'UTC day onboarding completed (terms accepted and phone verified).';

ALTER TABLE whatsapp_handler.analytics_funnel_daily RENAME COLUMN registered TO onboarded;
COMMENT ON TABLE whatsapp_handler.analytics_funnel_daily IS 'Onboarding funnel per cohort: users whose conversation on a channel began that UTC day (first contact, when they registered), and how many of them have since accepted the terms, verified, completed onboarding (both).';
COMMENT ON COLUMN whatsapp_handler.analytics_funnel_daily.onboarded IS 'Of them, those who completed onboarding (terms accepted and phone verified).';

ALTER TABLE whatsapp_handler.analytics_registrations_daily RENAME TO analytics_onboarded_daily;
ALTER TABLE whatsapp_handler.analytics_onboarded_daily RENAME COLUMN registrations TO onboarded;
ALTER TABLE whatsapp_handler.analytics_onboarded_daily RENAME CONSTRAINT analytics_registrations_daily_pkey TO analytics_onboarded_daily_pkey;
ALTER POLICY analytics_registrations_daily_channels ON whatsapp_handler.analytics_onboarded_daily
    RENAME TO analytics_onboarded_daily_channels;
COMMENT ON TABLE whatsapp_handler.analytics_onboarded_daily IS 'Users who completed onboarding (terms accepted and phone verified) per UTC day, on the channel of the user''s first conversation.';
COMMENT ON COLUMN whatsapp_handler.analytics_onboarded_daily.day IS 'UTC day onboarding completed.';
COMMENT ON COLUMN whatsapp_handler.analytics_onboarded_daily.onboarded IS 'Users who completed onboarding that day.';

ALTER VIEW analytics.users RENAME COLUMN registered_on TO onboarded_on;
COMMENT ON COLUMN analytics.users.onboarded_on IS 'UTC day onboarding completed: terms accepted and phone verified by OTP (NULL: not yet). The user registered on first contact (first_contact_on of the first channel).';

ALTER VIEW analytics.funnel_daily RENAME COLUMN registered TO onboarded;
COMMENT ON VIEW analytics.funnel_daily IS 'REFRESHED every 10 minutes. Onboarding funnel by cohort: users whose first contact on a channel was that UTC day, and how many of them have since accepted the terms, verified by OTP and completed onboarding (both).';
COMMENT ON COLUMN analytics.funnel_daily.onboarded IS 'Of them, those who completed onboarding (terms accepted and phone verified).';

ALTER VIEW analytics.registrations_daily RENAME TO onboarded_daily;
ALTER VIEW analytics.onboarded_daily RENAME COLUMN registrations TO onboarded;
COMMENT ON VIEW analytics.onboarded_daily IS 'REFRESHED every 10 minutes. Users who completed onboarding (terms accepted and phone verified) per UTC day, counted once per user on the channel of the user''s first conversation.';
COMMENT ON COLUMN analytics.onboarded_daily.day IS 'UTC day onboarding completed.';
COMMENT ON COLUMN analytics.onboarded_daily.onboarded IS 'Users who completed onboarding that day.';

COMMIT;
