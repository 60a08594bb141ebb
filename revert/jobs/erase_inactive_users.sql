-- Revert whatsapp_handler:jobs/erase_inactive_users from pg
BEGIN;

DROP FUNCTION whatsapp_handler.job_erase_inactive_users(integer);

COMMIT;
