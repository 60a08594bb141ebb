-- Revert whatsapp_handler:view_analytics_delivery_latency_daily from pg
BEGIN;

DROP VIEW analytics.delivery_latency_daily;

COMMIT;
