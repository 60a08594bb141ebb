-- Revert whatsapp_handler:providers/twilio from pg
BEGIN;

DROP FUNCTION whatsapp_handler._normalise_twilio(jsonb, bigint);
DROP FUNCTION whatsapp_handler._twilio_channel_ref(jsonb);
DROP FUNCTION whatsapp_handler._twilio_is_callback(jsonb);

COMMIT;
