-- Revert whatsapp_handler:view_analytics_refresh_status from pg
BEGIN;

DROP VIEW analytics.refresh_status;

COMMIT;
