-- Verify whatsapp_handler:sending/window on pg
BEGIN;

SELECT 1 / count(*) FROM whatsapp_handler.settings WHERE key = 'sending.window';
SELECT whatsapp_handler._assert_function('whatsapp_handler._window_open(bigint, bigint)', '{}');
SELECT whatsapp_handler._assert_function('whatsapp_handler._check_window(bigint, bigint)', '{}');

ROLLBACK;
