-- Verify whatsapp_handler:core/correlation_id on pg
BEGIN;

SELECT 1 / (NOT has_function_privilege('public', 'whatsapp_handler.correlation_id()', 'execute'))::int;
SELECT set_config('whatsapp_handler.correlation_id', 'verify-cid', true);
SELECT 1 / (whatsapp_handler.correlation_id() = 'verify-cid')::int;

ROLLBACK;
