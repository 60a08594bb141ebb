-- Deploy whatsapp_handler:analytics/views/funnel_daily to pg
-- requires: analytics/assert_view analytics/summaries_policy
-- security_barrier, owned by the owner (runs with its rights; analysts need no access to
-- the tables): rows limited to the analyst's channels (docs/analytics.md).
BEGIN;
SET LOCAL ROLE whatsapp_handler_owner;

CREATE VIEW analytics.funnel_daily WITH (security_barrier = true) AS
SELECT day, channel_id, first_contacts, terms_accepted, verified, registered,
       round(terms_accepted::numeric / nullif(first_contacts, 0), 4) AS terms_accepted_rate,
       round(verified::numeric / nullif(first_contacts, 0), 4) AS verified_rate
FROM whatsapp_handler.analytics_funnel_daily;
COMMENT ON VIEW analytics.funnel_daily IS 'REFRESHED every 10 minutes. Registration funnel by cohort: users whose first contact on a channel was that UTC day, and how many of them have since accepted the terms, verified by OTP and completed registration.';
COMMENT ON COLUMN analytics.funnel_daily.day IS 'UTC day of first contact (the cohort).';
COMMENT ON COLUMN analytics.funnel_daily.channel_id IS 'The channel.';
COMMENT ON COLUMN analytics.funnel_daily.first_contacts IS 'Users of the cohort (first contact on this channel that day).';
COMMENT ON COLUMN analytics.funnel_daily.terms_accepted IS 'Of them, those who have accepted the terms.';
COMMENT ON COLUMN analytics.funnel_daily.verified IS 'Of them, those who have verified their number by OTP.';
COMMENT ON COLUMN analytics.funnel_daily.registered IS 'Of them, those whose registration completed.';
COMMENT ON COLUMN analytics.funnel_daily.terms_accepted_rate IS 'terms_accepted / first_contacts (0-1).';
COMMENT ON COLUMN analytics.funnel_daily.verified_rate IS 'verified / first_contacts (0-1).';
GRANT SELECT ON analytics.funnel_daily TO whatsapp_handler_analyst;

COMMIT;
