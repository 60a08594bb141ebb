-- Deploy whatsapp_handler:analytics/campaigns to pg
-- requires: analytics/assert_view analytics/analyst_channels campaigns/campaigns campaigns/recipient_status
-- Each campaign's funnel for analysts, limited to their channels like every analytics view
-- (security_barrier, owned by the owner: analysts need no access to the tables). Live: the
-- campaign tables are neither partitioned nor dropped by a job, so an analyst's open
-- transaction holds up nothing that ingestion waits for. No phone leaves the tables (and
-- no column ends in name but the campaign's own: tests/test_analytics.py looks for them).
BEGIN;
SET LOCAL ROLE whatsapp_handler_owner;

CREATE VIEW analytics.campaigns WITH (security_barrier = true) AS
SELECT c.id AS campaign_id, c.name, c.channel_id, c.template_name AS template, c.template_language, c.category, c.state,
       c.state_reason, c.created_at, c.state_changed_at, c.per_second, c.daily_budget,
       count(r.*) AS recipients,
       count(*) FILTER (WHERE r.state = 'pending') AS pending,
       count(*) FILTER (WHERE r.state = 'queued') AS queued,
       count(*) FILTER (WHERE r.state IN ('sent', 'delivered', 'read')) AS sent,
       count(*) FILTER (WHERE r.state IN ('delivered', 'read')) AS delivered,
       count(*) FILTER (WHERE r.state = 'read') AS read,
       count(*) FILTER (WHERE r.state = 'failed') AS failed,
       count(*) FILTER (WHERE r.state = 'skipped') AS skipped,
       coalesce((SELECT jsonb_object_agg(f.reason, f.n) FROM (
                     SELECT x.reason, count(*) AS n FROM whatsapp_handler.campaign_recipients x
                     WHERE x.campaign_id = c.id AND x.state = 'failed' GROUP BY x.reason) f), '{}') AS failed_by_reason,
       coalesce((SELECT jsonb_object_agg(s.reason, s.n) FROM (
                     SELECT x.reason, count(*) AS n FROM whatsapp_handler.campaign_recipients x
                     WHERE x.campaign_id = c.id AND x.state = 'skipped' GROUP BY x.reason) s), '{}') AS skipped_by_reason
FROM whatsapp_handler.campaigns c
LEFT JOIN whatsapp_handler.campaign_recipients r ON r.campaign_id = c.id
WHERE c.channel_id = ANY ((SELECT whatsapp_handler._visible_channels())::bigint[])
GROUP BY c.id;
COMMENT ON VIEW analytics.campaigns IS 'LIVE. One row per campaign of the analyst''s channels: its template, state and the funnel of its recipients (pending → queued → sent → delivered → read, failed, skipped), with failures and skips by reason.';
COMMENT ON COLUMN analytics.campaigns.campaign_id IS 'The campaign.';
COMMENT ON COLUMN analytics.campaigns.name IS 'Its name, as the business gave it.';
COMMENT ON COLUMN analytics.campaigns.channel_id IS 'The channel it sends on.';
COMMENT ON COLUMN analytics.campaigns.template IS 'The template every recipient is sent.';
COMMENT ON COLUMN analytics.campaigns.template_language IS 'Its language.';
COMMENT ON COLUMN analytics.campaigns.category IS 'Its category when the campaign was made: marketing, utility or authentication.';
COMMENT ON COLUMN analytics.campaigns.state IS 'draft, scheduled, running, paused, budget_exhausted, completed or cancelled.';
COMMENT ON COLUMN analytics.campaigns.state_reason IS 'Why it is in that state: operator, template_<status>, quality_flagged, quality_downgrade, channel_inactive, provider_refuses; NULL for none.';
COMMENT ON COLUMN analytics.campaigns.created_at IS 'When it was made.';
COMMENT ON COLUMN analytics.campaigns.state_changed_at IS 'When its state last changed.';
COMMENT ON COLUMN analytics.campaigns.per_second IS 'Its own pace: recipients sent at most per second.';
COMMENT ON COLUMN analytics.campaigns.daily_budget IS 'At most this many recipients queued per UTC day; NULL for no limit.';
COMMENT ON COLUMN analytics.campaigns.recipients IS 'Rows of its audience, duplicates and invalid rows included.';
COMMENT ON COLUMN analytics.campaigns.pending IS 'Not yet dispatched.';
COMMENT ON COLUMN analytics.campaigns.queued IS 'Queued, not yet reported sent by the provider.';
COMMENT ON COLUMN analytics.campaigns.sent IS 'Reported sent, delivered or read.';
COMMENT ON COLUMN analytics.campaigns.delivered IS 'Reported delivered or read.';
COMMENT ON COLUMN analytics.campaigns.read IS 'Reported read.';
COMMENT ON COLUMN analytics.campaigns.failed IS 'Failed in the end (a failure a delivery outranks is not one).';
COMMENT ON COLUMN analytics.campaigns.skipped IS 'Not sent: duplicate, invalid_number, missing_variables, opted_out, no_consent, blocked, cancelled, ...';
COMMENT ON COLUMN analytics.campaigns.failed_by_reason IS 'Failures by reason (undeliverable, marketing_opt_out, ecosystem_limit, provider_down, ...): {"reason": n}.';
COMMENT ON COLUMN analytics.campaigns.skipped_by_reason IS 'Skips by reason: {"reason": n}.';
GRANT SELECT ON analytics.campaigns TO whatsapp_handler_analyst;

COMMIT;
