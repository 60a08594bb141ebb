-- Verify whatsapp_handler:templates/status_updates on pg
BEGIN;

SELECT channel_id, account_id, seen_at FROM whatsapp_handler.meta_channel_accounts WHERE false;
SELECT quality_score FROM whatsapp_handler.message_templates WHERE false;
SELECT whatsapp_handler._assert_function('whatsapp_handler._learn_meta_account(bigint, text)', '{}');
SELECT whatsapp_handler._assert_function('whatsapp_handler._meta_template_update(text, text, jsonb)', '{}');

ROLLBACK;
