-- Revert whatsapp_handler:view_analytics_users from pg
BEGIN;

DROP VIEW analytics.users;

COMMIT;
