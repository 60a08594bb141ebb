-- Revert whatsapp_handler:analytics/summaries from pg
BEGIN;

DROP TABLE whatsapp_handler.analytics_refreshes;
DROP TABLE whatsapp_handler.analytics_active_users;
DROP TABLE whatsapp_handler.analytics_delivery_daily;
DROP TABLE whatsapp_handler.analytics_messages_daily;
DROP TABLE whatsapp_handler.analytics_otp_daily;
DROP TABLE whatsapp_handler.analytics_registrations_daily;
DROP TABLE whatsapp_handler.analytics_funnel_daily;
DROP TABLE whatsapp_handler.analytics_users;

COMMIT;
