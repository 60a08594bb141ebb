-- Revert whatsapp_handler:analytics/views/messages_daily from pg
BEGIN;

DROP VIEW analytics.messages_daily;

COMMIT;
