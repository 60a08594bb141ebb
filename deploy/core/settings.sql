-- Deploy whatsapp_handler:core/settings to pg
-- requires: core/schema
-- Values a DBA may change without a deploy (UPDATE whatsapp_handler.settings ...).
BEGIN;
SET LOCAL ROLE whatsapp_handler_owner;

CREATE TABLE whatsapp_handler.settings (
    key         text PRIMARY KEY CONSTRAINT settings_key_shape CHECK (key ~ '^[a-z][a-z0-9_.]{0,63}$'),
    value       jsonb NOT NULL,
    description text NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE whatsapp_handler.settings IS 'Runtime settings owned by the DBA: change a value with UPDATE, no deploy needed.';

INSERT INTO whatsapp_handler.settings (key, value, description) VALUES
    ('terms.version', '"2026-11"', 'The terms version a user accepts by answering YES.'),
    ('terms.url', '"https://example.com/terms"', 'Where the terms can be read; quoted in the terms message.');

CREATE FUNCTION whatsapp_handler._setting(p_key text)
RETURNS jsonb
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
DECLARE
    v jsonb;
BEGIN
    SELECT value INTO v FROM settings WHERE key = p_key;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'setting % is missing', p_key
            USING ERRCODE = 'WH011', HINT = 'Restore it: INSERT INTO whatsapp_handler.settings (key, value, description) ...';
    END IF;
    RETURN v;
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler._setting(text) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler._setting(text) IS 'Internal: the value of a setting. Raises WH011 when it is missing.';

COMMIT;
