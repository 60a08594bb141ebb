-- Revert whatsapp_handler:users/accept_terms from pg
BEGIN;

DROP FUNCTION whatsapp_handler.accept_terms(bigint, text);

COMMIT;
