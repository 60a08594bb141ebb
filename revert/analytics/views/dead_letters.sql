-- Revert whatsapp_handler:analytics/views/dead_letters from pg
BEGIN;

DROP VIEW analytics.dead_letters;

COMMIT;
