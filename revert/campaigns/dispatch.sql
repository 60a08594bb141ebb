-- Revert whatsapp_handler:campaigns/dispatch from pg
BEGIN;

DROP FUNCTION whatsapp_handler.worker_campaigns(integer);
DROP FUNCTION whatsapp_handler._campaign_dispatch(bigint, integer);
DROP FUNCTION whatsapp_handler._campaign_skip_reason(text, text, bigint);

COMMIT;
