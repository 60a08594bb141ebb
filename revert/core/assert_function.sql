-- Revert whatsapp_handler:core/assert_function from pg
BEGIN;

DROP FUNCTION whatsapp_handler._assert_function(regprocedure, text[]);

COMMIT;
