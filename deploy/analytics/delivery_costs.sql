-- Deploy whatsapp_handler:analytics/delivery_costs to pg
-- requires: analytics/summaries_policy analytics/assert_view analytics/analyst_channels messages/status_order messages/status_pricing
-- What delivery costs and where it fails, per channel, UTC day and pricing category: the
-- messages the provider called billable (Meta's pricing of a sent or delivered status;
-- the price itself is the rate card's, per category and country) and the failures by the
-- provider's error code. A summary table recounted by job_analytics_refresh like the
-- others, under the same row-level security, read through a security_barrier view.
BEGIN;
SET LOCAL ROLE whatsapp_handler_owner;

CREATE TABLE whatsapp_handler.analytics_delivery_costs_daily (
    day        date NOT NULL,
    channel_id bigint NOT NULL,
    category   text NOT NULL,
    error_code text NOT NULL,
    messages   integer NOT NULL,
    billable   integer NOT NULL,
    failed     integer NOT NULL,
    PRIMARY KEY (day, channel_id, category, error_code)
);
COMMENT ON TABLE whatsapp_handler.analytics_delivery_costs_daily IS 'Outbound messages per UTC day of their first reported status, channel, pricing category and (for failures) error code, from the statuses providers reported (message_status_events): how many, how many billable, how many failed.';
COMMENT ON COLUMN whatsapp_handler.analytics_delivery_costs_daily.category IS 'The pricing category the provider reported (Meta: marketing, utility, authentication, service, ...), or unpriced when no status carried one.';
COMMENT ON COLUMN whatsapp_handler.analytics_delivery_costs_daily.error_code IS 'The provider''s error code of a failed message (its last failed status''s first error); the empty string for a message that did not fail.';

ALTER TABLE whatsapp_handler.analytics_delivery_costs_daily ENABLE ROW LEVEL SECURITY;
ALTER TABLE whatsapp_handler.analytics_delivery_costs_daily FORCE ROW LEVEL SECURITY;
CREATE POLICY analytics_delivery_costs_daily_channels ON whatsapp_handler.analytics_delivery_costs_daily
    USING (channel_id = ANY ((SELECT whatsapp_handler._visible_channels())::bigint[]));
COMMENT ON POLICY analytics_delivery_costs_daily_channels ON whatsapp_handler.analytics_delivery_costs_daily IS 'Rows of the channels the current user sees (_visible_channels): all for the owner, the listed ones for an analyst, none without a grant.';

-- The recount of the days since p_since: every message with a status received since then
-- (an hour's slack for the providers' clocks), with all its statuses (a late delivery of
-- an older message must not count it on a later day), kept when its first status falls
-- on or after p_since. Whether it failed is the status order's rule (_status_rank): a
-- failure that a delivery or a read outranks is not a failed message.
CREATE FUNCTION whatsapp_handler._delivery_costs(p_since timestamptz)
RETURNS TABLE (day date, channel_id bigint, category text, error_code text, messages integer, billable integer,
               failed integer)
LANGUAGE sql STABLE
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
    SELECT m.day, m.channel_id, m.category, CASE WHEN m.failed THEN coalesce(m.error_code, 'unknown') ELSE '' END,
           count(*)::integer, (count(*) FILTER (WHERE m.billable))::integer, (count(*) FILTER (WHERE m.failed))::integer
    FROM (
        SELECT s.channel_id,
               (min(s.occurred_at) AT TIME ZONE 'UTC')::date AS day,
               min(s.occurred_at) AS first_at,
               coalesce((array_agg(s.pricing ->> 'category' ORDER BY s.id DESC)
                         FILTER (WHERE s.pricing ->> 'category' IS NOT NULL))[1], 'unpriced') AS category,
               coalesce(bool_or(s.pricing -> 'billable' = 'true'::jsonb), false) AS billable,
               max(_status_rank(s.status)) = _status_rank('failed') AS failed,
               (array_agg(left(s.errors -> 0 ->> 'code', 32) ORDER BY s.id DESC) FILTER (WHERE s.status = 'failed'))[1]
                   AS error_code
        FROM message_status_events s
        WHERE (s.channel_id, s.provider_message_id) IN (
            SELECT t.channel_id, t.provider_message_id FROM message_status_events t
            WHERE t.received_at >= p_since - interval '1 hour')
        GROUP BY s.channel_id, s.provider_message_id
    ) m
    WHERE m.first_at >= p_since
    GROUP BY 1, 2, 3, 4
$$;
REVOKE ALL ON FUNCTION whatsapp_handler._delivery_costs(timestamptz) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler._delivery_costs(timestamptz) IS
    'Internal: the rows of analytics_delivery_costs_daily for the messages whose first status is at or after p_since, recounted from message_status_events (job_analytics_refresh). Raises nothing.';

CREATE VIEW analytics.delivery_costs_daily WITH (security_barrier = true) AS
SELECT day, channel_id, category, nullif(error_code, '') AS error_code, messages, billable, failed
FROM whatsapp_handler.analytics_delivery_costs_daily;
COMMENT ON VIEW analytics.delivery_costs_daily IS 'REFRESHED every 10 minutes. Outbound messages per UTC day of their first reported status, channel, pricing category and error code: how many, how many the provider called billable, how many failed (a failure a delivery or a read outranks is not one).';
COMMENT ON COLUMN analytics.delivery_costs_daily.day IS 'UTC day of the message''s first reported status.';
COMMENT ON COLUMN analytics.delivery_costs_daily.channel_id IS 'The channel.';
COMMENT ON COLUMN analytics.delivery_costs_daily.category IS 'The pricing category the provider reported (Meta: marketing, utility, authentication, service, ...); unpriced when none was.';
COMMENT ON COLUMN analytics.delivery_costs_daily.error_code IS 'The provider''s error code of the failed messages of the row (e.g. 131026 undeliverable, 131050 stopped marketing); NULL for messages that did not fail.';
COMMENT ON COLUMN analytics.delivery_costs_daily.messages IS 'Messages.';
COMMENT ON COLUMN analytics.delivery_costs_daily.billable IS 'Of them, reported billable: what the rate card charges for, per category.';
COMMENT ON COLUMN analytics.delivery_costs_daily.failed IS 'Of them, failed in the end (the status order: queued < sent < failed < delivered < read).';
GRANT SELECT ON analytics.delivery_costs_daily TO whatsapp_handler_analyst;

COMMIT;
