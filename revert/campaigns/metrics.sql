-- Revert whatsapp_handler:campaigns/metrics from pg
BEGIN;

DROP FUNCTION whatsapp_handler.worker_campaign_metrics();

COMMIT;
