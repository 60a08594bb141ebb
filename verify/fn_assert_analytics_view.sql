-- Verify whatsapp_handler:fn_assert_analytics_view on pg
BEGIN;

SELECT whatsapp_handler._assert_function('whatsapp_handler._assert_analytics_view(regclass)', '{}');

ROLLBACK;
