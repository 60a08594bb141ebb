-- Revert whatsapp_handler:analytics/assert_view from pg
BEGIN;

DROP FUNCTION whatsapp_handler._assert_analytics_view(regclass);

COMMIT;
