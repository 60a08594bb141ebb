-- Verify whatsapp_handler:users/accept_terms on pg
BEGIN;

SELECT whatsapp_handler._assert_function('whatsapp_handler.accept_terms(bigint, text)', '{}');
-- Onboarding is stamped by the helper of that name (_complete_registration is gone).
SELECT 1 / (prosrc LIKE '%\_complete\_onboarding(%')::int FROM pg_catalog.pg_proc
WHERE oid = 'whatsapp_handler.accept_terms(bigint, text)'::regprocedure;

ROLLBACK;
