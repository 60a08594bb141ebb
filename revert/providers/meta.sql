-- Revert whatsapp_handler:providers/meta from pg
BEGIN;

DROP FUNCTION whatsapp_handler._normalise_meta(jsonb, bigint);

COMMIT;
