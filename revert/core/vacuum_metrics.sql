-- Revert whatsapp_handler:core/vacuum_metrics from pg
BEGIN;

DROP FUNCTION whatsapp_handler.vacuum_metrics();

COMMIT;
