-- Revert whatsapp_handler:fn_readiness from pg
BEGIN;

DROP FUNCTION whatsapp_handler.queue_metrics();
DROP FUNCTION whatsapp_handler.readiness(text);
REVOKE pg_read_all_stats FROM whatsapp_handler_owner;
REVOKE SELECT ON sqitch.changes FROM whatsapp_handler_owner;
REVOKE USAGE ON SCHEMA sqitch FROM whatsapp_handler_owner;

COMMIT;
