-- Verify whatsapp_handler:providers/evolution on pg
BEGIN;

SELECT whatsapp_handler._assert_function('whatsapp_handler._normalise_evolution(jsonb, bigint)', '{}');
SELECT whatsapp_handler._assert_function('whatsapp_handler._evolution_channel_ref(jsonb)', '{}');
-- The reworked body: connection updates move the channel's standing.
SELECT 1 / (pg_catalog.pg_get_functiondef('whatsapp_handler._normalise_evolution(jsonb, bigint)'::regprocedure)
            LIKE '%_channel_connection_update%')::int;

ROLLBACK;
