-- Verify whatsapp_handler:fn_normalise_twilio on pg
BEGIN;

SELECT whatsapp_handler._assert_function('whatsapp_handler._normalise_twilio(jsonb, bigint)', '{}');

ROLLBACK;
