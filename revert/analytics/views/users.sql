-- Revert whatsapp_handler:analytics/views/users from pg
BEGIN;

DROP VIEW analytics.users;

COMMIT;
