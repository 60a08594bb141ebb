-- Revert whatsapp_handler:campaigns/api from pg
BEGIN;

COMMIT;
