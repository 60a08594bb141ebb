-- Revert whatsapp_handler:jobs/redrive_outbound from pg
BEGIN;

DROP FUNCTION whatsapp_handler.redrive_outbound(integer, bigint[]);

COMMIT;
