-- Deploy whatsapp_handler:analytics/schema to pg
-- requires: core/roles
-- The analysts' schema (docs/analytics.md): views only, owned by the owner role. The
-- analyst role may use it and select from its views, and nothing else in the database.
BEGIN;

CREATE SCHEMA analytics AUTHORIZATION whatsapp_handler_owner;
COMMENT ON SCHEMA analytics IS 'Documented, pseudonymous views for analysts (docs/analytics.md): no phone number, no message body. Read by whatsapp_handler_analyst; rows limited to the analyst''s channels.';
GRANT USAGE ON SCHEMA analytics TO whatsapp_handler_analyst;

COMMIT;
