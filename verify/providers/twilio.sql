-- Verify whatsapp_handler:providers/twilio on pg
BEGIN;

SELECT whatsapp_handler._assert_function('whatsapp_handler._normalise_twilio(jsonb, bigint)', '{}');

ROLLBACK;
