-- Verify whatsapp_handler:providers/carries on pg
BEGIN;

SELECT whatsapp_handler._assert_function('whatsapp_handler._check_carries(whatsapp_handler.provider, jsonb, whatsapp_handler.message_templates)', '{}');
SELECT whatsapp_handler._check_carries('meta', '{"type": "reaction", "reaction": {"message_id": "x", "emoji": "+"}}');

ROLLBACK;
