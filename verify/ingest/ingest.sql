-- Verify whatsapp_handler:ingest/ingest on pg
BEGIN;

SELECT whatsapp_handler._assert_function('whatsapp_handler.ingest_meta(jsonb, text)', '{whatsapp_handler_relay}');
SELECT whatsapp_handler._assert_function('whatsapp_handler.ingest_twilio(jsonb, text)', '{whatsapp_handler_relay}');
SELECT whatsapp_handler._assert_function('whatsapp_handler.ingest_evolution(jsonb, text)', '{whatsapp_handler_relay}');
SELECT whatsapp_handler._assert_function('whatsapp_handler.ingest_batch(text, jsonb[], text[])', '{whatsapp_handler_relay}');
SELECT whatsapp_handler._assert_function('whatsapp_handler.ingest_raw(text, bytea, text, text, text)', '{whatsapp_handler_relay}');
SELECT whatsapp_handler._assert_function('whatsapp_handler._ingest(whatsapp_handler.provider, jsonb, text, bytea, text)', '{}');
SELECT whatsapp_handler._assert_function('whatsapp_handler._ingest_meta_texts(jsonb[], text[])', '{}');
SELECT whatsapp_handler._assert_function('whatsapp_handler._normalise(whatsapp_handler.provider, jsonb, bigint)', '{}');
SELECT whatsapp_handler._assert_function('whatsapp_handler._channel_ref(whatsapp_handler.provider, jsonb)', '{}');

ROLLBACK;
