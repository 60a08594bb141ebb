-- Revert whatsapp_handler:jobs/retention from pg
BEGIN;

DROP FUNCTION whatsapp_handler.job_trim_cron_history();
DROP FUNCTION whatsapp_handler._trim_cron_history(timestamptz);
REVOKE USAGE ON SCHEMA cron FROM whatsapp_handler_cron;
DROP FUNCTION whatsapp_handler.job_retention();
DROP INDEX whatsapp_handler.message_keys_message_created_at_brin;

COMMIT;
