-- Verify whatsapp_handler:campaigns/dispatch on pg
BEGIN;

SELECT whatsapp_handler._assert_function('whatsapp_handler._campaign_skip_reason(text, text, bigint)', '{}');
SELECT whatsapp_handler._assert_function('whatsapp_handler._campaign_dispatch(bigint, integer)', '{}');
SELECT whatsapp_handler._assert_function('whatsapp_handler.worker_campaigns(integer)', '{whatsapp_handler_worker}');

ROLLBACK;
