-- Revert whatsapp_handler:conversation/reply_texts from pg
BEGIN;

DROP FUNCTION whatsapp_handler._reply_text(text, text);
DROP TABLE whatsapp_handler.reply_texts;

COMMIT;
