-- Revert whatsapp_handler:conversation/converse from pg
BEGIN;

DROP FUNCTION whatsapp_handler._converse(bigint, text, text);
DROP FUNCTION whatsapp_handler._converse_ignores(text, text);
DROP FUNCTION whatsapp_handler._set_state(bigint, text, jsonb);
DROP FUNCTION whatsapp_handler._brand_terms_accepted(whatsapp_handler.users, text, text);
DROP FUNCTION whatsapp_handler._known_to_other_brand(bigint, text);

COMMIT;
