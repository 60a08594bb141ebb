-- Revert whatsapp_handler:fn_normalise_evolution from pg
BEGIN;

DROP FUNCTION whatsapp_handler._normalise_evolution(jsonb, bigint);

COMMIT;
