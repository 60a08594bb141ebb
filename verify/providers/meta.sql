-- Verify whatsapp_handler:providers/meta on pg
BEGIN;

SELECT whatsapp_handler._assert_function('whatsapp_handler._normalise_meta(jsonb, bigint)', '{}');
SELECT whatsapp_handler._assert_function('whatsapp_handler._meta_channel_ref(jsonb)', '{}');
-- The reworked body: template webhooks and pricing.
SELECT 1 / (pg_catalog.pg_get_functiondef('whatsapp_handler._normalise_meta(jsonb, bigint)'::regprocedure)
            LIKE '%_meta_template_update%')::int;
-- A number's quality and the account's updates move the channels' standing (channels/standing).
SELECT 1 / (pg_catalog.pg_get_functiondef('whatsapp_handler._normalise_meta(jsonb, bigint)'::regprocedure)
            LIKE '%_meta_account_update%')::int;

ROLLBACK;
