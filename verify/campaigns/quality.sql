-- Verify whatsapp_handler:campaigns/quality on pg
BEGIN;

SELECT channel_id, event, current_limit, changed_at FROM whatsapp_handler.channel_quality WHERE FALSE;
SELECT 1 / (NOT has_table_privilege('whatsapp_handler_relay', 'whatsapp_handler.channel_quality', 'select'))::int;
SELECT whatsapp_handler._assert_function('whatsapp_handler._meta_quality_update(text, jsonb)', '{}');

ROLLBACK;
