-- Revert whatsapp_handler:view_analytics_registrations_daily from pg
BEGIN;

DROP VIEW analytics.registrations_daily;

COMMIT;
