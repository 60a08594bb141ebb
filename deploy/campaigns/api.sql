-- Deploy whatsapp_handler:campaigns/api to pg
-- requires: campaigns/campaigns campaigns/dispatch sending/api_keys
BEGIN;
SET LOCAL ROLE whatsapp_handler_owner;

COMMIT;
