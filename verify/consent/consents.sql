-- Verify whatsapp_handler:consent/consents on pg
BEGIN;

SELECT user_id, channel_id, status, source, changed_at FROM whatsapp_handler.consents WHERE FALSE;
SELECT 1 / (count(*) = 2)::int FROM pg_catalog.pg_constraint
WHERE conrelid = 'whatsapp_handler.consents'::regclass AND conname IN ('consents_status_known', 'consents_source_shape');
SELECT 1 / (NOT has_table_privilege('whatsapp_handler_relay', 'whatsapp_handler.consents', 'select'))::int;
SELECT whatsapp_handler._assert_function('whatsapp_handler._record_consent(bigint, bigint, boolean, text)', '{}');
SELECT whatsapp_handler._assert_function('whatsapp_handler._check_consent(bigint, bigint, text)', '{}');

ROLLBACK;
