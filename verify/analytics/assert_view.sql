-- Verify whatsapp_handler:analytics/assert_view on pg
BEGIN;

SELECT whatsapp_handler._assert_function('whatsapp_handler._assert_analytics_view(regclass)', '{}');

ROLLBACK;
