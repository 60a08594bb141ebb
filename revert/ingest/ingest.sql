-- Revert whatsapp_handler:ingest/ingest from pg
BEGIN;

DROP FUNCTION whatsapp_handler.ingest_batch(text, jsonb[], text[]);
DROP FUNCTION whatsapp_handler._ingest_meta_texts(jsonb[], text[]);
DROP FUNCTION whatsapp_handler.ingest_evolution(jsonb, text);
DROP FUNCTION whatsapp_handler.ingest_twilio(jsonb, text);
DROP FUNCTION whatsapp_handler.ingest_meta(jsonb, text);
DROP FUNCTION whatsapp_handler.ingest_raw(text, bytea, text, text, text);
DROP FUNCTION whatsapp_handler._ingest(whatsapp_handler.provider, jsonb, text, bytea, text);
DROP FUNCTION whatsapp_handler._channel_ref(whatsapp_handler.provider, jsonb);
DROP FUNCTION whatsapp_handler._normalise(whatsapp_handler.provider, jsonb, bigint);

COMMIT;
