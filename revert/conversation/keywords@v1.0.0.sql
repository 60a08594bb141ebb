-- Revert whatsapp_handler:conversation/keywords from pg
BEGIN;

DROP FUNCTION whatsapp_handler._is_keyword(text);

COMMIT;
