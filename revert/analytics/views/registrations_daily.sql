-- Revert whatsapp_handler:analytics/views/registrations_daily from pg
BEGIN;

DROP VIEW analytics.registrations_daily;

COMMIT;
