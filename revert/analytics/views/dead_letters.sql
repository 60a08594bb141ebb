-- Revert whatsapp_handler:analytics/views/dead_letters from pg
-- Dead letters queued meanwhile keep the channel_id the trigger added: a harmless key.
BEGIN;

DROP VIEW analytics.dead_letters;
DROP TRIGGER inbound_dlq_channel ON pgmq.q_inbound_dlq;
DROP FUNCTION whatsapp_handler._dead_letter_channel();

COMMIT;
