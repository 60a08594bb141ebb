-- Revert whatsapp_handler:analytics/views/active_users from pg
BEGIN;

DROP VIEW analytics.active_users;

COMMIT;
