-- Revert whatsapp_handler:queue/groups from pg
BEGIN;

DROP FUNCTION whatsapp_handler._redact_group_events(text, text[], text[]);
DROP FUNCTION whatsapp_handler._purge_group(text, text[]);
DROP INDEX pgmq.a_outbox_group_idx;
DROP INDEX pgmq.a_outbound_group_idx;

COMMIT;
