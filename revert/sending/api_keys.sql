-- Revert whatsapp_handler:sending/api_keys from pg
-- The keys go with the table: a redeploy issues new ones (the old ones were never stored).
BEGIN;

DROP FUNCTION whatsapp_handler._api_key_check(bytea, bigint, text);
DROP FUNCTION whatsapp_handler.api_key_revoke(text);
DROP FUNCTION whatsapp_handler.api_key_create(text, bigint[], text[]);
DROP TABLE whatsapp_handler.api_keys;

COMMIT;
