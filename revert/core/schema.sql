-- Revert whatsapp_handler:core/schema from pg
BEGIN;

ALTER DEFAULT PRIVILEGES FOR ROLE whatsapp_handler_owner GRANT EXECUTE ON FUNCTIONS TO PUBLIC;
DROP SCHEMA whatsapp_handler;

COMMIT;
