-- Revert whatsapp_handler:providers/evolution from pg
BEGIN;

DROP FUNCTION whatsapp_handler._normalise_evolution(jsonb, bigint);
DROP FUNCTION whatsapp_handler._evolution_channel_ref(jsonb);

COMMIT;
