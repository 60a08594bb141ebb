-- Revert whatsapp_handler:analytics/views/otp_daily from pg
BEGIN;

DROP VIEW analytics.otp_daily;

COMMIT;
