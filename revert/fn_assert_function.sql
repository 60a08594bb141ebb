-- Revert whatsapp_handler:fn_assert_function from pg
BEGIN;

DROP FUNCTION whatsapp_handler._assert_function(regprocedure, text[]);

COMMIT;
