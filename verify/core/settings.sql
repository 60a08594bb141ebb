-- Verify whatsapp_handler:core/settings on pg
BEGIN;

SELECT key, value, description, updated_at FROM whatsapp_handler.settings WHERE FALSE;
SELECT whatsapp_handler._assert_function('whatsapp_handler._setting(text)', '{}');

ROLLBACK;
