-- Revert whatsapp_handler:outbox/consumer from pg
BEGIN;
\ir ../kept.sql

DROP FUNCTION whatsapp_handler.outbox_dlq_replay(bigint[]);
DROP FUNCTION whatsapp_handler.outbox_nack(bigint, integer);
DROP FUNCTION whatsapp_handler.outbox_ack(bigint[]);
DROP FUNCTION whatsapp_handler.outbox_read(integer, integer);
WITH gone AS (DELETE FROM whatsapp_handler.settings WHERE key = 'outbox.max_reads' RETURNING *)
SELECT whatsapp_handler_kept.keep('setting', jsonb_agg(to_jsonb(gone))) FROM gone;

COMMIT;
