-- Revert whatsapp_handler:providers/twilio from pg
BEGIN;

DROP FUNCTION whatsapp_handler._normalise_twilio(jsonb, bigint);

COMMIT;
