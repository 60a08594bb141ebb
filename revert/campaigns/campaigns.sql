-- Revert whatsapp_handler:campaigns/campaigns from pg
BEGIN;

DROP FUNCTION whatsapp_handler.campaign_results(bigint);
DROP FUNCTION whatsapp_handler.campaign_control(bigint, text);
DROP FUNCTION whatsapp_handler.campaign_audience(bigint, jsonb);
DROP FUNCTION whatsapp_handler._campaign_interval(text);
DROP FUNCTION whatsapp_handler.campaign_upload(bigint, jsonb, boolean);
DROP FUNCTION whatsapp_handler._campaign_row_problem(jsonb, integer);
DROP FUNCTION whatsapp_handler.campaign_create(jsonb, bigint);
DROP FUNCTION whatsapp_handler._campaign_time(text);
DROP FUNCTION whatsapp_handler._campaign_message(whatsapp_handler.campaigns, text, jsonb);
DROP FUNCTION whatsapp_handler._campaign_move(bigint, text, text);
DROP FUNCTION whatsapp_handler._campaign_go_state(timestamptz);
DROP FUNCTION whatsapp_handler._campaign_refuse(whatsapp_handler.campaigns, text);
DROP FUNCTION whatsapp_handler._campaign(bigint);
DROP TABLE whatsapp_handler.campaign_recipients;
DROP TABLE whatsapp_handler.campaigns;
DELETE FROM whatsapp_handler.settings WHERE key IN ('campaigns.lookahead', 'campaigns.max_recipients');

COMMIT;
