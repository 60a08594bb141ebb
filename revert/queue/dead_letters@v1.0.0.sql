-- Revert whatsapp_handler:queue/dead_letters from pg
BEGIN;

DROP FUNCTION whatsapp_handler._park_outbound_letter(bigint);
DROP FUNCTION whatsapp_handler._outbound_letters_due(integer, bigint[], interval, interval);
DROP FUNCTION whatsapp_handler._replay_outbox_letters(bigint[]);
DROP FUNCTION whatsapp_handler._dead_letter_outbox(integer);
DROP FUNCTION whatsapp_handler._dead_letter_outbound(jsonb, jsonb);
DO $$
BEGIN
    PERFORM pgmq.drop_queue('outbound_dlq');
    PERFORM pgmq.drop_queue('outbox_dlq');
END
$$;

COMMIT;
