-- Revert whatsapp_handler:people/api from pg
BEGIN;

DROP FUNCTION whatsapp_handler.people_erase(bytea, jsonb, text);
DROP FUNCTION whatsapp_handler.people_export(bytea, jsonb, text);
DROP FUNCTION whatsapp_handler.people_unblock(bytea, jsonb, text);
DROP FUNCTION whatsapp_handler.people_block(bytea, jsonb, text);
DROP FUNCTION whatsapp_handler.people_set_preferences(bytea, jsonb, text);
DROP FUNCTION whatsapp_handler.people_preferences(bytea, jsonb, text);
DROP FUNCTION whatsapp_handler.people_consent(bytea, jsonb, text);
DROP FUNCTION whatsapp_handler._api_block_mark(bigint);
DROP FUNCTION whatsapp_handler._person_on_channel(bigint, text);
DROP FUNCTION whatsapp_handler._people_request(bytea, jsonb, text[], text);

COMMIT;
