-- Revert whatsapp_handler:campaigns/recipient_status from pg
BEGIN;

DROP TRIGGER messages_campaign_recipient_status ON whatsapp_handler.messages;
DROP FUNCTION whatsapp_handler._campaign_recipient_status();
DROP FUNCTION whatsapp_handler._failure_reason(bigint, bigint, bigint, text);

COMMIT;
