-- Verify whatsapp_handler:campaigns/recipient_status on pg
BEGIN;

SELECT whatsapp_handler._assert_function('whatsapp_handler._failure_reason(bigint, bigint, bigint, text)', '{}');
SELECT whatsapp_handler._assert_function('whatsapp_handler._campaign_recipient_status()', '{}');
SELECT 1 / count(*) FROM pg_catalog.pg_trigger
WHERE tgname = 'messages_campaign_recipient_status' AND tgrelid = 'whatsapp_handler.messages'::regclass;

ROLLBACK;
