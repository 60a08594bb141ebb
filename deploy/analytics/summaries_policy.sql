-- Deploy whatsapp_handler:analytics/summaries_policy to pg
-- requires: analytics/summaries analytics/analyst_channels
-- Row-level security of the analytics summaries (docs/analytics.md). The analytics views
-- are owned by the owner and run with its rights, so RLS is FORCEd (the owner is subject
-- to it too). The policy compares each row's channel with _visible_channels(), the channels
-- of the session's login: an analyst's own; every channel for the refresh job, which pg_cron
-- runs as the jobs' login whatsapp_handler_cron (or a DBA, superuser or owner member). The call
-- is wrapped in a sub-select so that it runs once per query, not once per row.
BEGIN;
SET LOCAL ROLE whatsapp_handler_owner;

ALTER TABLE whatsapp_handler.analytics_users ENABLE ROW LEVEL SECURITY;
ALTER TABLE whatsapp_handler.analytics_users FORCE ROW LEVEL SECURITY;
CREATE POLICY analytics_users_channels ON whatsapp_handler.analytics_users
    USING (channel_id = ANY ((SELECT whatsapp_handler._visible_channels())::bigint[]));
COMMENT ON POLICY analytics_users_channels ON whatsapp_handler.analytics_users IS 'Rows of the channels the current user sees (_visible_channels): all for the owner, the listed ones for an analyst, none without a grant.';

ALTER TABLE whatsapp_handler.analytics_funnel_daily ENABLE ROW LEVEL SECURITY;
ALTER TABLE whatsapp_handler.analytics_funnel_daily FORCE ROW LEVEL SECURITY;
CREATE POLICY analytics_funnel_daily_channels ON whatsapp_handler.analytics_funnel_daily
    USING (channel_id = ANY ((SELECT whatsapp_handler._visible_channels())::bigint[]));
COMMENT ON POLICY analytics_funnel_daily_channels ON whatsapp_handler.analytics_funnel_daily IS 'Rows of the channels the current user sees (_visible_channels): all for the owner, the listed ones for an analyst, none without a grant.';

ALTER TABLE whatsapp_handler.analytics_registrations_daily ENABLE ROW LEVEL SECURITY;
ALTER TABLE whatsapp_handler.analytics_registrations_daily FORCE ROW LEVEL SECURITY;
CREATE POLICY analytics_registrations_daily_channels ON whatsapp_handler.analytics_registrations_daily
    USING (channel_id = ANY ((SELECT whatsapp_handler._visible_channels())::bigint[]));
COMMENT ON POLICY analytics_registrations_daily_channels ON whatsapp_handler.analytics_registrations_daily IS 'Rows of the channels the current user sees (_visible_channels): all for the owner, the listed ones for an analyst, none without a grant.';

ALTER TABLE whatsapp_handler.analytics_otp_daily ENABLE ROW LEVEL SECURITY;
ALTER TABLE whatsapp_handler.analytics_otp_daily FORCE ROW LEVEL SECURITY;
CREATE POLICY analytics_otp_daily_channels ON whatsapp_handler.analytics_otp_daily
    USING (channel_id = ANY ((SELECT whatsapp_handler._visible_channels())::bigint[]));
COMMENT ON POLICY analytics_otp_daily_channels ON whatsapp_handler.analytics_otp_daily IS 'Rows of the channels the current user sees (_visible_channels): all for the owner, the listed ones for an analyst, none without a grant.';

ALTER TABLE whatsapp_handler.analytics_messages_daily ENABLE ROW LEVEL SECURITY;
ALTER TABLE whatsapp_handler.analytics_messages_daily FORCE ROW LEVEL SECURITY;
CREATE POLICY analytics_messages_daily_channels ON whatsapp_handler.analytics_messages_daily
    USING (channel_id = ANY ((SELECT whatsapp_handler._visible_channels())::bigint[]));
COMMENT ON POLICY analytics_messages_daily_channels ON whatsapp_handler.analytics_messages_daily IS 'Rows of the channels the current user sees (_visible_channels): all for the owner, the listed ones for an analyst, none without a grant.';

ALTER TABLE whatsapp_handler.analytics_delivery_daily ENABLE ROW LEVEL SECURITY;
ALTER TABLE whatsapp_handler.analytics_delivery_daily FORCE ROW LEVEL SECURITY;
CREATE POLICY analytics_delivery_daily_channels ON whatsapp_handler.analytics_delivery_daily
    USING (channel_id = ANY ((SELECT whatsapp_handler._visible_channels())::bigint[]));
COMMENT ON POLICY analytics_delivery_daily_channels ON whatsapp_handler.analytics_delivery_daily IS 'Rows of the channels the current user sees (_visible_channels): all for the owner, the listed ones for an analyst, none without a grant.';

ALTER TABLE whatsapp_handler.analytics_active_users ENABLE ROW LEVEL SECURITY;
ALTER TABLE whatsapp_handler.analytics_active_users FORCE ROW LEVEL SECURITY;
CREATE POLICY analytics_active_users_channels ON whatsapp_handler.analytics_active_users
    USING (channel_id = ANY ((SELECT whatsapp_handler._visible_channels())::bigint[]));
COMMENT ON POLICY analytics_active_users_channels ON whatsapp_handler.analytics_active_users IS 'Rows of the channels the current user sees (_visible_channels): all for the owner, the listed ones for an analyst, none without a grant.';

COMMIT;
