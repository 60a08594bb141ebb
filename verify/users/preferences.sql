-- Verify whatsapp_handler:users/preferences on pg
BEGIN;

SELECT user_id, notifications_enabled, language, timezone, delay_threshold_minutes, auto_claim, updated_at
FROM whatsapp_handler.user_preferences WHERE FALSE;
SELECT 1 / count(*) FROM pg_catalog.pg_attribute
WHERE attrelid = 'whatsapp_handler.user_preferences'::regclass AND attname = 'language'
  AND pg_get_expr((SELECT adbin FROM pg_attrdef WHERE adrelid = attrelid AND adnum = attnum), attrelid) = '''en-GB''::text';

ROLLBACK;
