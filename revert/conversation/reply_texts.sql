-- Revert whatsapp_handler:conversation/reply_texts from pg
BEGIN;
\ir ../kept.sql

DROP FUNCTION whatsapp_handler._reply_text(text, text);
WITH gone AS (DELETE FROM whatsapp_handler.reply_texts RETURNING *)
SELECT whatsapp_handler_kept.keep('reply_text', jsonb_agg(to_jsonb(gone))) FROM gone;
DROP TABLE whatsapp_handler.reply_texts;

COMMIT;
