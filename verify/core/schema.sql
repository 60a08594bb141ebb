-- Verify whatsapp_handler:core/schema on pg
BEGIN;

SELECT 1 / count(*) FROM pg_catalog.pg_namespace
WHERE nspname = 'whatsapp_handler' AND nspowner = 'whatsapp_handler_owner'::regrole;
SELECT 1 / (NOT has_schema_privilege('public', 'whatsapp_handler', 'usage'))::int;
SELECT 1 / (NOT has_schema_privilege('whatsapp_handler_analyst', 'whatsapp_handler', 'usage'))::int;
SELECT 1 / has_schema_privilege('whatsapp_handler_consumer', 'whatsapp_handler', 'usage')::int;
SELECT 1 / count(*) FROM pg_catalog.pg_default_acl
WHERE defaclrole = 'whatsapp_handler_owner'::regrole AND defaclobjtype = 'f' AND defaclnamespace = 0;

ROLLBACK;
