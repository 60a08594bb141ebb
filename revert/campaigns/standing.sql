-- Revert whatsapp_handler:campaigns/standing from pg
BEGIN;

DROP TRIGGER channel_standing_campaigns_connection ON whatsapp_handler.channel_standing;
DROP FUNCTION whatsapp_handler._campaigns_follow_connection();
DROP TRIGGER channel_standing_campaigns_pause ON whatsapp_handler.channel_standing;
DROP FUNCTION whatsapp_handler._campaigns_pause_on_quality();

COMMIT;
