-- Revert whatsapp_handler:queue/rights from pg
BEGIN;

DROP FUNCTION whatsapp_handler._queue_rights_beyond_owner(text[]);

COMMIT;
