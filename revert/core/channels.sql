-- Revert whatsapp_handler:core/channels from pg
BEGIN;

DROP FUNCTION whatsapp_handler.add_channel(text, text, text, text, text);
DROP FUNCTION whatsapp_handler._brand(bigint);
DROP TABLE whatsapp_handler.channels;
DROP TYPE whatsapp_handler.provider;

COMMIT;
