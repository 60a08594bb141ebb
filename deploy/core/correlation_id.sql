-- Deploy whatsapp_handler:core/correlation_id to pg
-- requires: core/schema
-- Request context read from settings that the relay sets per transaction
-- (set_config('whatsapp_handler.correlation_id', id, true)).
BEGIN;
SET LOCAL ROLE whatsapp_handler_owner;

-- No SET clause and plain SQL, so that callers inline it: a SQL function that is not
-- inlined is planned again on every call, which shows on the ingestion path.
CREATE FUNCTION whatsapp_handler.correlation_id()
RETURNS text
LANGUAGE sql STABLE
AS $$
    SELECT pg_catalog.left(NULLIF(pg_catalog.current_setting('whatsapp_handler.correlation_id', true), ''), 128)
$$;
COMMENT ON FUNCTION whatsapp_handler.correlation_id() IS
    'The correlation id of the current request (setting whatsapp_handler.correlation_id, at most 128 characters), or NULL. Raises nothing.';

COMMIT;
