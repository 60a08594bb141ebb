-- Revert whatsapp_handler:providers/evolution from pg
BEGIN;

DROP FUNCTION whatsapp_handler._normalise_evolution(jsonb, bigint);

COMMIT;
