-- Verify whatsapp_handler:conversation/keywords on pg
BEGIN;

SELECT whatsapp_handler._assert_function('whatsapp_handler._is_keyword(text)', '{}');
SELECT 1 / (whatsapp_handler._is_keyword(' stop ') AND NOT whatsapp_handler._is_keyword('stopping'))::int;

ROLLBACK;
