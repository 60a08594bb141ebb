-- Revert whatsapp_handler:analytics/schema from pg
BEGIN;

DROP SCHEMA analytics;

COMMIT;
