-- Deploy whatsapp_handler:core/channels to pg
-- requires: core/schema core/e164
BEGIN;
SET LOCAL ROLE whatsapp_handler_owner;

CREATE TYPE whatsapp_handler.provider AS ENUM ('meta', 'twilio', 'evolution');
COMMENT ON TYPE whatsapp_handler.provider IS 'The WhatsApp API a channel is reached through.';

CREATE TABLE whatsapp_handler.channels (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    provider      whatsapp_handler.provider NOT NULL,
    provider_ref  text NOT NULL CONSTRAINT channels_provider_ref_shape CHECK (provider_ref ~ '^[A-Za-z0-9_:+.@-]{1,128}$'),
    phone         whatsapp_handler.e164 NOT NULL,
    name          text NOT NULL CONSTRAINT channels_name_length CHECK (char_length(name) BETWEEN 1 AND 100),
    active        boolean NOT NULL DEFAULT true,
    brand         text CONSTRAINT channels_brand_shape CHECK (brand ~ '^[a-z0-9][a-z0-9_.-]{0,62}$'),
    created_at    timestamptz NOT NULL DEFAULT now(),
    -- Webhooks are routed to their channel by the provider's identifier.
    CONSTRAINT channels_provider_ref_unique UNIQUE (provider, provider_ref)
);
COMMENT ON TABLE whatsapp_handler.channels IS 'A WhatsApp business number on one provider.';
COMMENT ON COLUMN whatsapp_handler.channels.provider_ref IS 'The provider''s identifier of the number: Meta phone_number_id, Twilio sender number (whatsapp:+E164), Evolution instance name.';
COMMENT ON COLUMN whatsapp_handler.channels.phone IS 'The business number in E.164.';
COMMENT ON COLUMN whatsapp_handler.channels.active IS 'Inactive channels accept no new registrations or OTP requests.';
COMMENT ON COLUMN whatsapp_handler.channels.brand IS 'The business the number speaks for: terms accepted and erasure asked for in a conversation count for the channels of one brand. NULL: the channel is a brand of its own (see _brand).';

-- The brand a channel belongs to: its brand, or a brand of its own when none is set, so
-- that two channels configured without one never act for each other's users. "channel:"
-- cannot be a configured brand (the shape rule has no colon).
CREATE FUNCTION whatsapp_handler._brand(p_channel_id bigint)
RETURNS text
LANGUAGE sql STABLE
AS $$
    SELECT coalesce(c.brand, 'channel:' OPERATOR(pg_catalog.||) c.id)
    FROM whatsapp_handler.channels c WHERE c.id = p_channel_id
$$;
REVOKE ALL ON FUNCTION whatsapp_handler._brand(bigint) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler._brand(bigint) IS
    'Internal: the brand of a channel, its brand column or channel:<id> when that is NULL; NULL for an unknown channel. Raises nothing.';

CREATE FUNCTION whatsapp_handler.add_channel(p_provider text, p_provider_ref text, p_phone text, p_name text,
                                             p_brand text DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
DECLARE
    v_id bigint;
BEGIN
    IF p_provider IS NULL OR p_provider NOT IN ('meta', 'twilio', 'evolution') THEN
        RAISE EXCEPTION 'unknown provider %', coalesce(p_provider, 'NULL')
            USING ERRCODE = 'WH008', HINT = 'The provider is one of meta, twilio, evolution.';
    END IF;
    INSERT INTO channels (provider, provider_ref, phone, name, brand)
    VALUES (p_provider::provider, p_provider_ref, p_phone, p_name, p_brand)
    ON CONFLICT ON CONSTRAINT channels_provider_ref_unique DO UPDATE
        SET phone = EXCLUDED.phone, name = EXCLUDED.name, brand = EXCLUDED.brand, active = true
    RETURNING id INTO v_id;
    RETURN v_id;
EXCEPTION
    WHEN check_violation OR not_null_violation THEN
        RAISE EXCEPTION 'invalid channel: %', SQLERRM
            USING ERRCODE = 'WH008',
                  HINT = 'provider_ref: 1-128 of [A-Za-z0-9_:+.@-]; phone: E.164 such as +447700900123; name: 1-100 characters; brand: NULL or 1-63 of [a-z0-9_.-], starting with a letter or digit.';
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler.add_channel(text, text, text, text, text) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler.add_channel(text, text, text, text, text) IS
    'Operators: adds a channel, or updates (and re-activates) the one with the same provider and provider_ref, its brand included (NULL: a brand of its own); returns its id. Raises WH008 for an unknown provider or a malformed reference, phone, name or brand.';

COMMIT;
