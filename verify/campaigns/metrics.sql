-- Verify whatsapp_handler:campaigns/metrics on pg
BEGIN;

SELECT whatsapp_handler._assert_function('whatsapp_handler.worker_campaign_metrics()', '{whatsapp_handler_worker}');

ROLLBACK;
