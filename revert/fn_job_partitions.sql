-- Revert whatsapp_handler:fn_job_partitions from pg
BEGIN;

DROP FUNCTION whatsapp_handler.job_partitions();

COMMIT;
