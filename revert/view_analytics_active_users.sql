-- Revert whatsapp_handler:view_analytics_active_users from pg
BEGIN;

DROP VIEW analytics.active_users;

COMMIT;
