-- Revert whatsapp_handler:analytics/user_keys from pg
BEGIN;

DROP FUNCTION whatsapp_handler._country_code(text);
DROP FUNCTION whatsapp_handler._user_key(bigint);
DROP TABLE whatsapp_handler.analytics_keys;

COMMIT;
