-- Revert whatsapp_handler:analytics/views/refresh_status from pg
BEGIN;

DROP VIEW analytics.refresh_status;

COMMIT;
