-- Verify whatsapp_handler:conversation/converse on pg
BEGIN;

SELECT whatsapp_handler._assert_function('whatsapp_handler._converse(bigint, text, text)', '{}');
SELECT whatsapp_handler._assert_function('whatsapp_handler._converse_ignores(text, text)', '{}');
SELECT whatsapp_handler._assert_function('whatsapp_handler._set_state(bigint, text, jsonb)', '{}');
SELECT whatsapp_handler._assert_function('whatsapp_handler._known_to_other_brand(bigint, text)', '{}');
SELECT whatsapp_handler._assert_function('whatsapp_handler._erase_on_request(bigint)', '{}');
SELECT whatsapp_handler._assert_function('whatsapp_handler._brand_terms_accepted(whatsapp_handler.users, text, text)', '{}');

ROLLBACK;
