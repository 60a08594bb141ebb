-- Deploy whatsapp_handler:analytics/views/delivery_latency_daily to pg
-- requires: analytics/assert_view analytics/summaries_policy
-- security_barrier, owned by the owner (runs with its rights; analysts need no access to
-- the tables): rows limited to the analyst's channels (docs/analytics.md).
BEGIN;
SET LOCAL ROLE whatsapp_handler_owner;

CREATE VIEW analytics.delivery_latency_daily WITH (security_barrier = true) AS
SELECT day, channel_id, sent, delivered, read, failed,
       sent_to_delivered_p50, sent_to_delivered_p90, sent_to_delivered_p99,
       delivered_to_read_p50, delivered_to_read_p90, delivered_to_read_p99, sent_to_read_p50
FROM whatsapp_handler.analytics_delivery_daily;
COMMENT ON VIEW analytics.delivery_latency_daily IS 'REFRESHED every 10 minutes. Delivery of outbound messages per UTC day of their first "sent" status and channel, from the statuses providers reported: counts and latency percentiles in seconds (provider clocks).';
COMMENT ON COLUMN analytics.delivery_latency_daily.day IS 'UTC day of the message''s first sent status.';
COMMENT ON COLUMN analytics.delivery_latency_daily.channel_id IS 'The channel.';
COMMENT ON COLUMN analytics.delivery_latency_daily.sent IS 'Messages reported sent.';
COMMENT ON COLUMN analytics.delivery_latency_daily.delivered IS 'Of them, reported delivered.';
COMMENT ON COLUMN analytics.delivery_latency_daily.read IS 'Of them, reported read.';
COMMENT ON COLUMN analytics.delivery_latency_daily.failed IS 'Of them, reported failed.';
COMMENT ON COLUMN analytics.delivery_latency_daily.sent_to_delivered_p50 IS 'Median seconds from sent to delivered.';
COMMENT ON COLUMN analytics.delivery_latency_daily.sent_to_delivered_p90 IS '90th percentile seconds from sent to delivered.';
COMMENT ON COLUMN analytics.delivery_latency_daily.sent_to_delivered_p99 IS '99th percentile seconds from sent to delivered.';
COMMENT ON COLUMN analytics.delivery_latency_daily.delivered_to_read_p50 IS 'Median seconds from delivered to read.';
COMMENT ON COLUMN analytics.delivery_latency_daily.delivered_to_read_p90 IS '90th percentile seconds from delivered to read.';
COMMENT ON COLUMN analytics.delivery_latency_daily.delivered_to_read_p99 IS '99th percentile seconds from delivered to read.';
COMMENT ON COLUMN analytics.delivery_latency_daily.sent_to_read_p50 IS 'Median seconds from sent to read.';
GRANT SELECT ON analytics.delivery_latency_daily TO whatsapp_handler_analyst;

COMMIT;
