-- Revert whatsapp_handler:templates/status_updates from pg
-- The statuses the webhooks set stay in the registry; the accounts are learned again
-- from the next webhooks after a deploy.
BEGIN;
SET LOCAL ROLE whatsapp_handler_owner;

DROP FUNCTION whatsapp_handler._meta_template_update(text, text, jsonb);
DROP FUNCTION whatsapp_handler._learn_meta_account(bigint, text);
ALTER TABLE whatsapp_handler.message_templates DROP COLUMN quality_score;
DROP TABLE whatsapp_handler.meta_channel_accounts;

COMMIT;
