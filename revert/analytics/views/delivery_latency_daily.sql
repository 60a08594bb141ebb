-- Revert whatsapp_handler:analytics/views/delivery_latency_daily from pg
BEGIN;

DROP VIEW analytics.delivery_latency_daily;

COMMIT;
