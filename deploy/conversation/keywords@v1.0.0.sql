-- Deploy whatsapp_handler:conversation/keywords to pg
-- requires: core/schema
-- The keywords that work in every state of a conversation. The conversation
-- (conversation/converse) acts on them; ingest_batch's fast lane (ingest/ingest) asks the
-- same function so that it never takes a keyword for plain text.
BEGIN;
SET LOCAL ROLE whatsapp_handler_owner;

-- A SQL expression without a search_path, so that it is inlined where it is called.
CREATE FUNCTION whatsapp_handler._is_keyword(p_text text)
RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT pg_catalog.upper(pg_catalog.btrim(p_text)) OPERATOR(pg_catalog.=) ANY (ARRAY['STOP', 'START', 'HELP', 'DELETE'])
$$;
REVOKE ALL ON FUNCTION whatsapp_handler._is_keyword(text) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler._is_keyword(text) IS
    'Internal: whether a message''s text (or reply id), trimmed and in any case, is one of the keywords STOP, START, HELP, DELETE; NULL for NULL. Raises nothing.';

COMMIT;
