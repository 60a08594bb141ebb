-- Revert whatsapp_handler:view_analytics_messages_daily from pg
BEGIN;

DROP VIEW analytics.messages_daily;

COMMIT;
