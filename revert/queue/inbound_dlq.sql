-- Revert whatsapp_handler:queue/inbound_dlq from pg
BEGIN;

DROP FUNCTION whatsapp_handler._archive_inbound_letter(bigint);
DROP FUNCTION whatsapp_handler._mark_inbound_letter(bigint, jsonb, interval);
DROP FUNCTION whatsapp_handler._inbound_letters_due(integer, bigint[]);
DROP FUNCTION whatsapp_handler._purge_inbound_letters(text[]);
DROP FUNCTION whatsapp_handler._dead_letter_inbound(jsonb);
DROP TRIGGER inbound_dlq_channel ON pgmq.q_inbound_dlq;
DROP FUNCTION whatsapp_handler._dead_letter_channel();
DO $$ BEGIN PERFORM pgmq.drop_queue('inbound_dlq'); END $$;

COMMIT;
