-- Deploy whatsapp_handler:core/schema to pg
-- requires: core/roles
BEGIN;

CREATE SCHEMA whatsapp_handler AUTHORIZATION whatsapp_handler_owner;
COMMENT ON SCHEMA whatsapp_handler IS 'Tables and API functions of whatsapp-handler. Tables are private; roles call functions.';
GRANT USAGE ON SCHEMA whatsapp_handler TO whatsapp_handler_relay, whatsapp_handler_worker, whatsapp_handler_consumer;

-- Functions are executable by PUBLIC unless revoked: the owner's functions start with
-- no grant at all, and each function's change grants EXECUTE to exactly its callers.
-- (A per-schema default cannot revoke a global one, hence FOR ROLE without IN SCHEMA.)
ALTER DEFAULT PRIVILEGES FOR ROLE whatsapp_handler_owner REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;

COMMIT;
