-- Verify whatsapp_handler:analytics/views/registrations_daily on pg
BEGIN;

-- analytics/onboarded renamed the view onboarded_daily and its count onboarded (its verify
-- checks those names): the view is checked under the name it has.
SELECT 1 / (count(*) = 3)::int FROM pg_catalog.pg_attribute
WHERE attrelid = coalesce(to_regclass('analytics.onboarded_daily'), to_regclass('analytics.registrations_daily'))
  AND attname IN ('day', 'channel_id', 'registrations', 'onboarded') AND NOT attisdropped;
SELECT whatsapp_handler._assert_analytics_view(coalesce(to_regclass('analytics.onboarded_daily'),
                                                        to_regclass('analytics.registrations_daily')));

ROLLBACK;
