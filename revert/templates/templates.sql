-- Revert whatsapp_handler:templates/templates from pg
-- The registry is the provider's, not the DBA's: a redeploy syncs it again.
BEGIN;

DROP FUNCTION whatsapp_handler._template_for_send(bigint, jsonb);
DROP FUNCTION whatsapp_handler.template_upsert(bigint, text, text, text, text, jsonb, text, text);
DROP FUNCTION whatsapp_handler._placeholders(text);
DROP TABLE whatsapp_handler.message_templates;

COMMIT;
