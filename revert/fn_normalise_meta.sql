-- Revert whatsapp_handler:fn_normalise_meta from pg
BEGIN;

DROP FUNCTION whatsapp_handler._normalise_meta(jsonb, bigint);

COMMIT;
