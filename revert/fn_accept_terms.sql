-- Revert whatsapp_handler:fn_accept_terms from pg
BEGIN;

DROP FUNCTION whatsapp_handler.accept_terms(bigint, text);

COMMIT;
