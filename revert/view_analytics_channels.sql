-- Revert whatsapp_handler:view_analytics_channels from pg
BEGIN;

DROP VIEW analytics.channels;

COMMIT;
