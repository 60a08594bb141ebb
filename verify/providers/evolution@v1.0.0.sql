-- Verify whatsapp_handler:providers/evolution on pg
BEGIN;

SELECT whatsapp_handler._assert_function('whatsapp_handler._normalise_evolution(jsonb, bigint)', '{}');
SELECT whatsapp_handler._assert_function('whatsapp_handler._evolution_channel_ref(jsonb)', '{}');

ROLLBACK;
