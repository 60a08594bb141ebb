-- Deploy whatsapp_handler:conversation/keywords to pg
-- Reworked after v1.0.0: _keyword(): the words and the action each asks for, in one place.
-- This is the whole change as it is now, CREATE OR REPLACE over the released functions
-- (deploy/conversation/keywords@v1.0.0.sql runs first).
-- requires: core/schema
-- The keywords that work in every state of a conversation. The conversation
-- (conversation/converse) acts on them; ingest_batch's fast lane (ingest/ingest) asks the
-- same function so that it never takes a keyword for plain text.
BEGIN;
SET LOCAL ROLE whatsapp_handler_owner;

-- The words and what each asks for: the one place a keyword is written. The conversation
-- acts on the action, so a word added here (another language's STOP) works everywhere.
-- SQL expressions without a search_path, so that they are inlined where they are called.
CREATE OR REPLACE FUNCTION whatsapp_handler._keyword(p_text text)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT CASE pg_catalog.upper(pg_catalog.btrim(p_text))
        WHEN 'STOP' THEN 'opt_out'
        WHEN 'START' THEN 'opt_in'
        WHEN 'HELP' THEN 'help'
        WHEN 'DELETE' THEN 'erase'
    END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler._keyword(text) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler._keyword(text) IS
    'Internal: the action a message''s text (or reply id), trimmed and in any case, asks for as a keyword: opt_out (STOP), opt_in (START), help (HELP), erase (DELETE); NULL for any other text and for NULL. Raises nothing.';

CREATE OR REPLACE FUNCTION whatsapp_handler._is_keyword(p_text text)
RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT CASE WHEN p_text IS NOT NULL THEN whatsapp_handler._keyword(p_text) IS NOT NULL END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler._is_keyword(text) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler._is_keyword(text) IS
    'Internal: whether a message''s text (or reply id) is a keyword (_keyword); NULL for NULL. Raises nothing.';

COMMIT;
