-- Revert whatsapp_handler:view_analytics_funnel_daily from pg
BEGIN;

DROP VIEW analytics.funnel_daily;

COMMIT;
