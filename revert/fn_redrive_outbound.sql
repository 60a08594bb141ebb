-- Revert whatsapp_handler:fn_redrive_outbound from pg
BEGIN;

DROP FUNCTION whatsapp_handler.redrive_outbound(integer, bigint[]);

COMMIT;
