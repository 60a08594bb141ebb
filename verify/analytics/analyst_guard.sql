-- Verify whatsapp_handler:analytics/analyst_guard on pg
BEGIN;

SELECT whatsapp_handler._assert_function('whatsapp_handler.job_analyst_guard()', '{}');
SELECT 1 / (whatsapp_handler._setting_interval('analyst.max_transaction', interval '1 second') IS NOT NULL)::int;
SELECT 1 / pg_has_role('whatsapp_handler_owner', 'pg_signal_backend', 'member')::int;

ROLLBACK;
