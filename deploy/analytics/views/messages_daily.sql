-- Deploy whatsapp_handler:analytics/views/messages_daily to pg
-- requires: analytics/assert_view analytics/summaries_policy
-- security_barrier, owned by the owner (runs with its rights; analysts need no access to
-- the tables): rows limited to the analyst's channels (docs/analytics.md).
BEGIN;
SET LOCAL ROLE whatsapp_handler_owner;

CREATE VIEW analytics.messages_daily WITH (security_barrier = true) AS
SELECT day, channel_id, direction, message_type, messages FROM whatsapp_handler.analytics_messages_daily;
COMMENT ON VIEW analytics.messages_daily IS 'REFRESHED every 10 minutes. Messages per UTC day, channel, direction and type; counts never go down (retention and erasure delete messages, not what was counted).';
COMMENT ON COLUMN analytics.messages_daily.day IS 'UTC day the message was recorded.';
COMMENT ON COLUMN analytics.messages_daily.channel_id IS 'The channel.';
COMMENT ON COLUMN analytics.messages_daily.direction IS 'inbound (users to the business) or outbound.';
COMMENT ON COLUMN analytics.messages_daily.message_type IS 'text, image, interactive, template, ... as the provider named it.';
COMMENT ON COLUMN analytics.messages_daily.messages IS 'Number of messages.';
GRANT SELECT ON analytics.messages_daily TO whatsapp_handler_analyst;

COMMIT;
