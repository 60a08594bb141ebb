-- Revert whatsapp_handler:jobs/partitions from pg
BEGIN;

DROP FUNCTION whatsapp_handler.job_partitions();

COMMIT;
