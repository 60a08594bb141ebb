-- Verify whatsapp_handler:fn_converse on pg
BEGIN;

SELECT whatsapp_handler._assert_function('whatsapp_handler._converse(bigint, text, text)', '{}');
SELECT whatsapp_handler._assert_function('whatsapp_handler._set_state(bigint, text, jsonb)', '{}');

ROLLBACK;
