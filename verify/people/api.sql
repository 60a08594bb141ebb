-- Verify whatsapp_handler:people/api on pg
BEGIN;

SELECT whatsapp_handler._assert_function('whatsapp_handler._people_request(bytea, jsonb, text[], text)', '{}');
SELECT whatsapp_handler._assert_function('whatsapp_handler._person_on_channel(bigint, text)', '{}');
SELECT whatsapp_handler._assert_function('whatsapp_handler._api_block_mark(bigint)', '{}');
SELECT whatsapp_handler._assert_function('whatsapp_handler.people_consent(bytea, jsonb, text)', '{whatsapp_handler_relay}');
SELECT whatsapp_handler._assert_function('whatsapp_handler.people_preferences(bytea, jsonb, text)', '{whatsapp_handler_relay}');
SELECT whatsapp_handler._assert_function('whatsapp_handler.people_set_preferences(bytea, jsonb, text)', '{whatsapp_handler_relay}');
SELECT whatsapp_handler._assert_function('whatsapp_handler.people_block(bytea, jsonb, text)', '{whatsapp_handler_relay}');
SELECT whatsapp_handler._assert_function('whatsapp_handler.people_unblock(bytea, jsonb, text)', '{whatsapp_handler_relay}');
SELECT whatsapp_handler._assert_function('whatsapp_handler.people_export(bytea, jsonb, text)', '{whatsapp_handler_relay}');
SELECT whatsapp_handler._assert_function('whatsapp_handler.people_erase(bytea, jsonb, text)', '{whatsapp_handler_relay}');

ROLLBACK;
