-- Revert whatsapp_handler:schema_analytics from pg
BEGIN;

DROP SCHEMA analytics;

COMMIT;
