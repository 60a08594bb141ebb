-- Revert whatsapp_handler:queue/archive from pg
BEGIN;

DROP FUNCTION whatsapp_handler._trim_archives(timestamptz, integer);
DROP FUNCTION whatsapp_handler._archive_outbox(bigint[]);
DROP FUNCTION whatsapp_handler._archive_outbound(bigint[]);

COMMIT;
