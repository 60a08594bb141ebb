-- Verify whatsapp_handler:core/channels on pg
BEGIN;

SELECT id, provider, provider_ref, phone, name, active, brand, created_at FROM whatsapp_handler.channels WHERE FALSE;
SELECT 1 / (count(*) = 2)::int FROM pg_catalog.pg_constraint
WHERE conrelid = 'whatsapp_handler.channels'::regclass
  AND conname IN ('channels_provider_ref_unique', 'channels_brand_shape');
SELECT 1 / (atttypid = 'whatsapp_handler.e164'::regtype)::int FROM pg_catalog.pg_attribute
WHERE attrelid = 'whatsapp_handler.channels'::regclass AND attname = 'phone';
SELECT 1 / (NOT has_table_privilege('whatsapp_handler_relay', 'whatsapp_handler.channels', 'select'))::int;
SELECT 1 / (NOT has_function_privilege('public', 'whatsapp_handler.add_channel(text, text, text, text, text)', 'execute'))::int;
SELECT 1 / (NOT has_function_privilege('public', 'whatsapp_handler._brand(bigint)', 'execute'))::int;

ROLLBACK;
