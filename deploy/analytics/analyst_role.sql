-- Deploy whatsapp_handler:analytics/analyst_role to pg
-- requires: core/roles
-- An analyst's query left running, or a transaction left open, on the primary holds back
-- vacuum and the queue tables bloat. These limits are set on the group role; PostgreSQL
-- does not pass a role's settings on to its members, so each analyst login gets its own
-- copy from whatsapp_handler.add_analyst (docs/analytics.md). Role settings are
-- cluster-wide: every database of the cluster sees them.
BEGIN;

ALTER ROLE whatsapp_handler_analyst SET statement_timeout = '30s';
ALTER ROLE whatsapp_handler_analyst SET idle_in_transaction_session_timeout = '60s';
ALTER ROLE whatsapp_handler_analyst SET default_transaction_read_only = on;

COMMIT;
