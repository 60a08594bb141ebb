-- Revert whatsapp_handler:analytics/dead_letter_history from pg
BEGIN;

DROP VIEW analytics.dead_letter_history_daily;

COMMIT;
