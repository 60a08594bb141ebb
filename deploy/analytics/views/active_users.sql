-- Deploy whatsapp_handler:analytics/views/active_users to pg
-- requires: analytics/assert_view analytics/summaries_policy
-- security_barrier, owned by the owner (runs with its rights; analysts need no access to
-- the tables): rows limited to the analyst's channels (docs/analytics.md).
BEGIN;
SET LOCAL ROLE whatsapp_handler_owner;

CREATE VIEW analytics.active_users WITH (security_barrier = true) AS
SELECT period, period_start, channel_id, users FROM whatsapp_handler.analytics_active_users;
COMMENT ON VIEW analytics.active_users IS 'REFRESHED every 10 minutes. Distinct users who wrote at least once on a channel in a UTC day, ISO week (from Monday) or calendar month. A user active on two channels counts on each.';
COMMENT ON COLUMN analytics.active_users.period IS 'day, week or month.';
COMMENT ON COLUMN analytics.active_users.period_start IS 'First UTC day of the period.';
COMMENT ON COLUMN analytics.active_users.channel_id IS 'The channel.';
COMMENT ON COLUMN analytics.active_users.users IS 'Distinct users with at least one inbound message in the period.';
GRANT SELECT ON analytics.active_users TO whatsapp_handler_analyst;

COMMIT;
