-- Verify whatsapp_handler:providers/meta on pg
BEGIN;

SELECT whatsapp_handler._assert_function('whatsapp_handler._normalise_meta(jsonb, bigint)', '{}');
SELECT whatsapp_handler._assert_function('whatsapp_handler._meta_channel_ref(jsonb)', '{}');

ROLLBACK;
