-- Revert whatsapp_handler:campaigns/quality from pg
BEGIN;

DROP TRIGGER channel_standing_campaigns_pause ON whatsapp_handler.channel_standing;
DROP FUNCTION whatsapp_handler._campaigns_pause_on_quality();

COMMIT;
