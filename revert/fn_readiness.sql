-- Revert whatsapp_handler:fn_readiness from pg
BEGIN;

DROP FUNCTION whatsapp_handler.queue_metrics();
DROP FUNCTION whatsapp_handler.readiness(text);
REVOKE SELECT ON sqitch.changes FROM whatsapp_handler_owner;
REVOKE USAGE ON SCHEMA sqitch FROM whatsapp_handler_owner;

COMMIT;
