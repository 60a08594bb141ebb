-- Verify whatsapp_handler:providers/twilio on pg
BEGIN;

SELECT whatsapp_handler._assert_function('whatsapp_handler._normalise_twilio(jsonb, bigint)', '{}');
SELECT whatsapp_handler._assert_function('whatsapp_handler._twilio_channel_ref(jsonb)', '{}');
SELECT whatsapp_handler._assert_function('whatsapp_handler._twilio_is_callback(jsonb)', '{}');

ROLLBACK;
