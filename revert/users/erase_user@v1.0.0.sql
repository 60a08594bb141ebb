-- Revert whatsapp_handler:users/erase_user from pg
BEGIN;

DROP FUNCTION whatsapp_handler._erase_user_from_brand(bigint);
DROP FUNCTION whatsapp_handler.erase_user(bigint);
DROP FUNCTION whatsapp_handler._scrub_pending_events(bigint, text[]);
DROP FUNCTION whatsapp_handler._erase_raw_webhooks(text, bigint[]);
DROP INDEX whatsapp_handler.webhook_events_unparsed_idx;
DROP INDEX whatsapp_handler.webhook_events_phones_idx;
DROP FUNCTION whatsapp_handler._phone_forms(text);
DROP FUNCTION whatsapp_handler._webhook_strings(whatsapp_handler.provider, text, jsonb);

COMMIT;
