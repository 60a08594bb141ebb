-- Revert whatsapp_handler:analytics/views/funnel_daily from pg
BEGIN;

DROP VIEW analytics.funnel_daily;

COMMIT;
