-- Revert whatsapp_handler:providers/meta from pg
BEGIN;

DROP FUNCTION whatsapp_handler._normalise_meta(jsonb, bigint);
DROP FUNCTION whatsapp_handler._meta_channel_ref(jsonb);

COMMIT;
