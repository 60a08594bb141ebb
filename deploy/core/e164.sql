-- Deploy whatsapp_handler:core/e164 to pg
-- requires: core/schema
-- The one shape of a phone number in the project: E.164, a + then 7 to 15 digits, the
-- first of which (the country code's) is not 0. Columns holding a number are of the
-- domain; functions that test a number without raising ask _is_e164.
BEGIN;
SET LOCAL ROLE whatsapp_handler_owner;

-- A SQL expression without a search_path, so that it is inlined where it is called (the
-- fast lane of ingest_batch tests every sender with it). NULL for NULL.
CREATE FUNCTION whatsapp_handler._is_e164(p_phone text)
RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT p_phone OPERATOR(pg_catalog.~) '^\+[1-9][0-9]{6,14}$'
$$;
REVOKE ALL ON FUNCTION whatsapp_handler._is_e164(text) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler._is_e164(text) IS
    'Internal: whether a text is a phone number in E.164 (+447700900123: a +, a country code not starting with 0, 8 to 16 characters in all); NULL for NULL. Raises nothing.';

-- NULL passes, as with any domain: a column says NOT NULL itself when it means it.
CREATE DOMAIN whatsapp_handler.e164 AS text CONSTRAINT e164_shape CHECK (whatsapp_handler._is_e164(VALUE));
COMMENT ON DOMAIN whatsapp_handler.e164 IS 'A phone number in E.164, e.g. +447700900123 (_is_e164).';

COMMIT;
