-- Verify whatsapp_handler:conversation/reply_texts on pg
BEGIN;

SELECT key, language, body FROM whatsapp_handler.reply_texts WHERE FALSE;
SELECT whatsapp_handler._assert_function('whatsapp_handler._reply_text(text, text)', '{}');
-- Every key used in some language has its en-GB fallback.
SELECT 1 / (count(*) = 0)::int FROM whatsapp_handler.reply_texts r
WHERE NOT EXISTS (SELECT FROM whatsapp_handler.reply_texts f WHERE f.key = r.key AND f.language = 'en-GB');

ROLLBACK;
