-- Verify whatsapp_handler:analytics/views/otp_daily on pg
BEGIN;

SELECT day, channel_id, requested, verified, failed_attempts, locked, expired, superseded, pending FROM analytics.otp_daily WHERE false;
SELECT whatsapp_handler._assert_analytics_view('analytics.otp_daily');

ROLLBACK;
