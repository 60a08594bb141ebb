-- Verify whatsapp_handler:sending/api_keys on pg
BEGIN;

SELECT id, name, key_hash, channel_ids, scopes, created_at, revoked_at FROM whatsapp_handler.api_keys WHERE FALSE;
SELECT 1 / (count(*) = 5)::int FROM pg_catalog.pg_constraint
WHERE conrelid = 'whatsapp_handler.api_keys'::regclass
  AND conname IN ('api_keys_name_shape', 'api_keys_key_hash_sha256', 'api_keys_channels_listed', 'api_keys_scopes_known',
                  'api_keys_key_hash_unique');
SELECT 1 / (NOT has_table_privilege('whatsapp_handler_relay', 'whatsapp_handler.api_keys', 'select'))::int;
SELECT whatsapp_handler._assert_function('whatsapp_handler.api_key_create(text, bigint[], text[])', '{}');
SELECT whatsapp_handler._assert_function('whatsapp_handler.api_key_revoke(text)', '{}');
SELECT whatsapp_handler._assert_function('whatsapp_handler._api_key_check(bytea, bigint, text)', '{}');

ROLLBACK;
