-- Revert whatsapp_handler:delivery/worker from pg
BEGIN;

DROP FUNCTION whatsapp_handler.worker_dead_letter(bigint, text, jsonb);
DROP FUNCTION whatsapp_handler.worker_release(bigint, double precision);
DROP FUNCTION whatsapp_handler.worker_retry(bigint, double precision, jsonb);
DROP FUNCTION whatsapp_handler.worker_sent_batch(bigint[], text[]);
DROP FUNCTION whatsapp_handler.worker_sent(bigint, text);
DROP FUNCTION whatsapp_handler.worker_claim(integer, integer, bigint[]);
DROP FUNCTION whatsapp_handler.worker_channels();

COMMIT;
