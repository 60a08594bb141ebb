-- Revert whatsapp_handler:queue/dlq_operators from pg
BEGIN;

DROP FUNCTION whatsapp_handler.dlq_purge(text, bigint[]);
DROP FUNCTION whatsapp_handler.dlq_letters(text, integer, bigint);
DROP FUNCTION whatsapp_handler.dlq_counts();
DROP FUNCTION whatsapp_handler._dlq_name(text);

COMMIT;
