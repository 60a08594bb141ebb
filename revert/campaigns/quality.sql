-- Revert whatsapp_handler:campaigns/quality from pg
BEGIN;

DROP FUNCTION whatsapp_handler._meta_quality_update(text, jsonb);
DROP TABLE whatsapp_handler.channel_quality;

COMMIT;
