-- Revert whatsapp_handler:fn_assert_analytics_view from pg
BEGIN;

DROP FUNCTION whatsapp_handler._assert_analytics_view(regclass);

COMMIT;
