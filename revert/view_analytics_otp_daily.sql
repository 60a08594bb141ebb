-- Revert whatsapp_handler:view_analytics_otp_daily from pg
BEGIN;

DROP VIEW analytics.otp_daily;

COMMIT;
