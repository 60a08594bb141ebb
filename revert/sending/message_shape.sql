-- Revert whatsapp_handler:sending/message_shape from pg
BEGIN;

DROP FUNCTION whatsapp_handler._message_shape(jsonb);
DROP FUNCTION whatsapp_handler._shape_interactive(jsonb);
DROP FUNCTION whatsapp_handler._shape_length(jsonb);
DROP FUNCTION whatsapp_handler._shape_number(jsonb, numeric, numeric);
DROP FUNCTION whatsapp_handler._shape_keys(jsonb, text[], text);
DROP FUNCTION whatsapp_handler._shape_text(jsonb, text, integer, boolean, text);
DROP FUNCTION whatsapp_handler._shape_error(text, text);

COMMIT;
