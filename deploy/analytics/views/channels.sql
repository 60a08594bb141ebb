-- Deploy whatsapp_handler:analytics/views/channels to pg
-- requires: analytics/assert_view analytics/analyst_channels
-- security_barrier, owned by the owner (runs with its rights; analysts need no access to
-- the tables): rows limited to the analyst's channels (docs/analytics.md).
BEGIN;
SET LOCAL ROLE whatsapp_handler_owner;

CREATE VIEW analytics.channels WITH (security_barrier = true) AS
SELECT c.id AS channel_id, c.name, c.provider::text AS provider, c.active, c.created_at::date AS created_on
FROM whatsapp_handler.channels c
WHERE c.id = ANY ((SELECT whatsapp_handler._visible_channels())::bigint[]);
COMMENT ON VIEW analytics.channels IS 'LIVE. The channels this analyst sees: the ids the other views are broken down by.';
COMMENT ON COLUMN analytics.channels.channel_id IS 'The channel (whatsapp_handler.channels.id), as in every other view.';
COMMENT ON COLUMN analytics.channels.name IS 'The channel''s name.';
COMMENT ON COLUMN analytics.channels.provider IS 'meta, twilio or evolution.';
COMMENT ON COLUMN analytics.channels.active IS 'Whether the channel takes traffic.';
COMMENT ON COLUMN analytics.channels.created_on IS 'UTC day the channel was added.';
GRANT SELECT ON analytics.channels TO whatsapp_handler_analyst;

COMMIT;
