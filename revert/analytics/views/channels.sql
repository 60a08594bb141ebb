-- Revert whatsapp_handler:analytics/views/channels from pg
BEGIN;

DROP VIEW analytics.channels;

COMMIT;
