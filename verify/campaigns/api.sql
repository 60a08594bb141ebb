-- Verify whatsapp_handler:campaigns/api on pg
BEGIN;

SELECT whatsapp_handler._assert_function('whatsapp_handler._api_campaign(bytea, bigint, text, text)', '{}');
SELECT whatsapp_handler._assert_function('whatsapp_handler.api_campaign_create(bytea, jsonb, text)', '{whatsapp_handler_relay}');
SELECT whatsapp_handler._assert_function('whatsapp_handler.api_campaign_upload(bytea, bigint, jsonb, boolean, text)', '{whatsapp_handler_relay}');
SELECT whatsapp_handler._assert_function('whatsapp_handler.api_campaign_audience(bytea, bigint, jsonb, text)', '{whatsapp_handler_relay}');
SELECT whatsapp_handler._assert_function('whatsapp_handler.api_campaign_control(bytea, bigint, text, text)', '{whatsapp_handler_relay}');
SELECT whatsapp_handler._assert_function('whatsapp_handler.api_campaign_results(bytea, bigint)', '{whatsapp_handler_relay}');
SELECT whatsapp_handler._assert_function('whatsapp_handler.api_campaign_recipients(bytea, bigint, text, integer, integer)', '{whatsapp_handler_relay}');

ROLLBACK;
