-- Verify whatsapp_handler:users/accept_terms on pg
BEGIN;

SELECT whatsapp_handler._assert_function('whatsapp_handler.accept_terms(bigint, text)', '{}');

ROLLBACK;
