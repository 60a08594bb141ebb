-- Verify whatsapp_handler:queue/dlq_operators on pg
BEGIN;

-- The operators' login is the deploying one: no service role may call these.
SELECT whatsapp_handler._assert_function('whatsapp_handler._dlq_name(text)', '{}');
SELECT whatsapp_handler._assert_function('whatsapp_handler.dlq_counts()', '{}');
SELECT whatsapp_handler._assert_function('whatsapp_handler.dlq_letters(text, integer, bigint)', '{}');
SELECT whatsapp_handler._assert_function('whatsapp_handler.dlq_purge(text, bigint[])', '{}');

ROLLBACK;
