-- Revert whatsapp_handler:view_analytics_dead_letters from pg
BEGIN;

DROP VIEW analytics.dead_letters;

COMMIT;
