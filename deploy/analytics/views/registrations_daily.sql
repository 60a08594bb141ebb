-- Deploy whatsapp_handler:analytics/views/registrations_daily to pg
-- requires: analytics/assert_view analytics/summaries_policy
-- security_barrier, owned by the owner (runs with its rights; analysts need no access to
-- the tables): rows limited to the analyst's channels (docs/analytics.md).
BEGIN;
SET LOCAL ROLE whatsapp_handler_owner;

CREATE VIEW analytics.registrations_daily WITH (security_barrier = true) AS
SELECT day, channel_id, registrations FROM whatsapp_handler.analytics_registrations_daily;
COMMENT ON VIEW analytics.registrations_daily IS 'REFRESHED every 10 minutes. Registrations completed per UTC day, counted once per user on the channel of the user''s first conversation.';
COMMENT ON COLUMN analytics.registrations_daily.day IS 'UTC day registration completed.';
COMMENT ON COLUMN analytics.registrations_daily.channel_id IS 'Channel of the user''s first conversation.';
COMMENT ON COLUMN analytics.registrations_daily.registrations IS 'Users whose registration completed that day.';
GRANT SELECT ON analytics.registrations_daily TO whatsapp_handler_analyst;

COMMIT;
