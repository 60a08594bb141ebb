-- Verify whatsapp_handler:analytics/delivery_costs on pg
BEGIN;

SELECT day, channel_id, category, error_code, messages, billable, failed FROM analytics.delivery_costs_daily WHERE false;
SELECT whatsapp_handler._assert_analytics_view('analytics.delivery_costs_daily');
SELECT whatsapp_handler._assert_function('whatsapp_handler._delivery_costs(timestamptz)', '{}');
-- The analysts' row-level security, forced on the owner too.
SELECT 1 / count(*) FROM pg_catalog.pg_class
WHERE oid = 'whatsapp_handler.analytics_delivery_costs_daily'::regclass AND relrowsecurity AND relforcerowsecurity;

ROLLBACK;
