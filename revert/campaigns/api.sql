-- Revert whatsapp_handler:campaigns/api from pg
BEGIN;

DROP FUNCTION whatsapp_handler.api_campaign_recipients(bytea, bigint, text, integer, integer);
DROP FUNCTION whatsapp_handler.api_campaign_results(bytea, bigint);
DROP FUNCTION whatsapp_handler.api_campaign_control(bytea, bigint, text, text);
DROP FUNCTION whatsapp_handler.api_campaign_audience(bytea, bigint, jsonb, text);
DROP FUNCTION whatsapp_handler.api_campaign_upload(bytea, bigint, jsonb, boolean, text);
DROP FUNCTION whatsapp_handler.api_campaign_create(bytea, jsonb, text);
DROP FUNCTION whatsapp_handler._api_campaign(bytea, bigint, text, text);

COMMIT;
