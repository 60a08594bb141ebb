-- Revert whatsapp_handler:fn_converse from pg
BEGIN;

DROP FUNCTION whatsapp_handler._converse(bigint, text, text);
DROP FUNCTION whatsapp_handler._set_state(bigint, text, jsonb);

COMMIT;
