-- Revert whatsapp_handler:analytics/summaries_policy from pg
BEGIN;

DROP POLICY analytics_users_channels ON whatsapp_handler.analytics_users;
ALTER TABLE whatsapp_handler.analytics_users NO FORCE ROW LEVEL SECURITY;
ALTER TABLE whatsapp_handler.analytics_users DISABLE ROW LEVEL SECURITY;
DROP POLICY analytics_funnel_daily_channels ON whatsapp_handler.analytics_funnel_daily;
ALTER TABLE whatsapp_handler.analytics_funnel_daily NO FORCE ROW LEVEL SECURITY;
ALTER TABLE whatsapp_handler.analytics_funnel_daily DISABLE ROW LEVEL SECURITY;
DROP POLICY analytics_registrations_daily_channels ON whatsapp_handler.analytics_registrations_daily;
ALTER TABLE whatsapp_handler.analytics_registrations_daily NO FORCE ROW LEVEL SECURITY;
ALTER TABLE whatsapp_handler.analytics_registrations_daily DISABLE ROW LEVEL SECURITY;
DROP POLICY analytics_otp_daily_channels ON whatsapp_handler.analytics_otp_daily;
ALTER TABLE whatsapp_handler.analytics_otp_daily NO FORCE ROW LEVEL SECURITY;
ALTER TABLE whatsapp_handler.analytics_otp_daily DISABLE ROW LEVEL SECURITY;
DROP POLICY analytics_messages_daily_channels ON whatsapp_handler.analytics_messages_daily;
ALTER TABLE whatsapp_handler.analytics_messages_daily NO FORCE ROW LEVEL SECURITY;
ALTER TABLE whatsapp_handler.analytics_messages_daily DISABLE ROW LEVEL SECURITY;
DROP POLICY analytics_delivery_daily_channels ON whatsapp_handler.analytics_delivery_daily;
ALTER TABLE whatsapp_handler.analytics_delivery_daily NO FORCE ROW LEVEL SECURITY;
ALTER TABLE whatsapp_handler.analytics_delivery_daily DISABLE ROW LEVEL SECURITY;
DROP POLICY analytics_active_users_channels ON whatsapp_handler.analytics_active_users;
ALTER TABLE whatsapp_handler.analytics_active_users NO FORCE ROW LEVEL SECURITY;
ALTER TABLE whatsapp_handler.analytics_active_users DISABLE ROW LEVEL SECURITY;

COMMIT;
