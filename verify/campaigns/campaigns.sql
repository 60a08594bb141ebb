-- Verify whatsapp_handler:campaigns/campaigns on pg
BEGIN;

SELECT id, name, channel_id, template_name, template_language, category, components, body_parameters, per_second,
       daily_budget, starts_at, state, state_reason, state_changed_at, tat, budget_day, budget_used, api_key_id, created_at
FROM whatsapp_handler.campaigns WHERE FALSE;
SELECT campaign_id, position, phone, variables, state, reason, message_id, message_created_at, updated_at
FROM whatsapp_handler.campaign_recipients WHERE FALSE;
SELECT 1 / (count(*) = 2)::int FROM whatsapp_handler.settings WHERE key IN ('campaigns.lookahead', 'campaigns.max_recipients');
SELECT 1 / (NOT has_table_privilege('whatsapp_handler_relay', 'whatsapp_handler.campaigns', 'select'))::int;
SELECT whatsapp_handler._assert_function('whatsapp_handler._campaign(bigint)', '{}');
SELECT whatsapp_handler._assert_function('whatsapp_handler._campaign_refuse(whatsapp_handler.campaigns, text)', '{}');
SELECT whatsapp_handler._assert_function('whatsapp_handler._campaign_go_state(timestamptz)', '{}');
SELECT whatsapp_handler._assert_function('whatsapp_handler._campaign_move(bigint, text, text)', '{}');
SELECT whatsapp_handler._assert_function('whatsapp_handler._campaign_message(whatsapp_handler.campaigns, text, jsonb)', '{}');
SELECT whatsapp_handler._assert_function('whatsapp_handler._campaign_time(text)', '{}');
SELECT whatsapp_handler._assert_function('whatsapp_handler.campaign_create(jsonb, bigint)', '{}');
SELECT whatsapp_handler._assert_function('whatsapp_handler._campaign_row_problem(jsonb, integer)', '{}');
SELECT whatsapp_handler._assert_function('whatsapp_handler.campaign_upload(bigint, jsonb, boolean)', '{}');
SELECT whatsapp_handler._assert_function('whatsapp_handler._campaign_interval(text)', '{}');
SELECT whatsapp_handler._assert_function('whatsapp_handler.campaign_audience(bigint, jsonb)', '{}');
SELECT whatsapp_handler._assert_function('whatsapp_handler.campaign_control(bigint, text)', '{}');
SELECT whatsapp_handler._assert_function('whatsapp_handler.campaign_results(bigint)', '{}');
-- A recipient row is checked by the one rule.
SELECT 1 / (whatsapp_handler._campaign_row_problem('{"phone": "+447700900123", "variables": ["a"]}', 1) IS NULL)::int;
SELECT 1 / (whatsapp_handler._campaign_row_problem('{"phone": "447700900123"}', 0) = 'invalid_number')::int;

ROLLBACK;
