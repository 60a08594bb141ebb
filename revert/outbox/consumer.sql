-- Revert whatsapp_handler:outbox/consumer from pg
BEGIN;

DROP FUNCTION whatsapp_handler.outbox_dlq_replay(bigint[]);
DROP FUNCTION whatsapp_handler.outbox_nack(bigint, integer);
DROP FUNCTION whatsapp_handler.outbox_ack(bigint[]);
DROP FUNCTION whatsapp_handler.outbox_read(integer, integer);
DELETE FROM whatsapp_handler.settings WHERE key = 'outbox.max_reads';

COMMIT;
