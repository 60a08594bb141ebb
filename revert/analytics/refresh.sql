-- Revert whatsapp_handler:analytics/refresh from pg
BEGIN;

DROP FUNCTION whatsapp_handler.job_analytics_refresh(timestamptz);
DELETE FROM whatsapp_handler.settings WHERE key = 'analytics.refresh_lookback';

COMMIT;
