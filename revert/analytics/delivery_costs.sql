-- Revert whatsapp_handler:analytics/delivery_costs from pg
-- A summary: recounted from the statuses after the next deploy.
BEGIN;
SET LOCAL ROLE whatsapp_handler_owner;

DROP VIEW analytics.delivery_costs_daily;
DROP FUNCTION whatsapp_handler._delivery_costs(timestamptz);
DROP TABLE whatsapp_handler.analytics_delivery_costs_daily;

COMMIT;
