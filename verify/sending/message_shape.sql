-- Verify whatsapp_handler:sending/message_shape on pg
BEGIN;

SELECT whatsapp_handler._assert_function('whatsapp_handler._message_shape(jsonb)', '{}');
SELECT whatsapp_handler._assert_function('whatsapp_handler._shape_interactive(jsonb)', '{}');
SELECT whatsapp_handler._assert_function('whatsapp_handler._shape_keys(jsonb, text[], text)', '{}');
SELECT whatsapp_handler._assert_function('whatsapp_handler._shape_text(jsonb, text, integer, boolean, text)', '{}');
SELECT whatsapp_handler._assert_function('whatsapp_handler._shape_error(text, text)', '{}');
SELECT whatsapp_handler._assert_function('whatsapp_handler._shape_number(jsonb, numeric, numeric)', '{}');
SELECT whatsapp_handler._assert_function('whatsapp_handler._shape_length(jsonb)', '{}');
SELECT 1 / (whatsapp_handler._message_shape('{"type": "text", "text": {"body": "hi"}, "to": "+447700900123"}')
            = '{"type": "text", "text": {"body": "hi"}}')::int;

ROLLBACK;
