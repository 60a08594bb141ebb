-- Revert whatsapp_handler:fn_normalise_twilio from pg
BEGIN;

DROP FUNCTION whatsapp_handler._normalise_twilio(jsonb, bigint);

COMMIT;
