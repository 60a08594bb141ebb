-- Revert whatsapp_handler:core/channels from pg
BEGIN;
\ir ../kept.sql

DROP FUNCTION whatsapp_handler.add_channel(text, text, text, text, text);
DROP FUNCTION whatsapp_handler._brand(bigint);
SELECT whatsapp_handler_kept.keep('channel', jsonb_agg(to_jsonb(c))) FROM whatsapp_handler.channels c;
DROP TABLE whatsapp_handler.channels;
DROP TYPE whatsapp_handler.provider;

COMMIT;
