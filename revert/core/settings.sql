-- Revert whatsapp_handler:core/settings from pg
BEGIN;

DROP FUNCTION whatsapp_handler._setting(text);
DROP TABLE whatsapp_handler.settings;

COMMIT;
