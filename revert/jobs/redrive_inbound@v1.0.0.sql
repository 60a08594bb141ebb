-- Revert whatsapp_handler:jobs/redrive_inbound from pg
BEGIN;

DROP FUNCTION whatsapp_handler.redrive_inbound(integer, bigint[]);

COMMIT;
