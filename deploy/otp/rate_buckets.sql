-- Deploy whatsapp_handler:otp/rate_buckets to pg
-- requires: jobs/settings core/assert_function
-- Token buckets that bound how fast OTP codes go out: one per API key of the OTP API and
-- one overall (docs/security.md, OTP abuse). Their rates and bursts are settings rows a DBA
-- changes without a deploy; request_otp takes a token from both in its own transaction.
BEGIN;
SET LOCAL ROLE whatsapp_handler_owner;

CREATE TABLE whatsapp_handler.otp_rate_buckets (
    bucket     text PRIMARY KEY
               CONSTRAINT otp_rate_buckets_bucket_shape CHECK (bucket ~ '^(overall|key:[A-Za-z0-9_.-]{1,64})$'),
    tokens     double precision NOT NULL,
    updated_at timestamptz NOT NULL
);
COMMENT ON TABLE whatsapp_handler.otp_rate_buckets IS
    'One token bucket per API key of the OTP API (key:<key id>, an identifier the relay derives from the key, never the key) and one for all of them (overall). tokens is what was left at updated_at; the refill is computed when a token is taken.';

INSERT INTO whatsapp_handler.settings (key, value, description) VALUES
    ('otp.limit.per_key.per_minute', '60', 'OTP codes each API key may have issued per minute, sustained: the refill of its token bucket (1-100000).'),
    ('otp.limit.per_key.burst', '20', 'OTP codes an API key may have issued at once after a quiet spell: the size of its token bucket (1-100000).'),
    ('otp.limit.overall.per_minute', '300', 'OTP codes issued per minute by all API keys together, sustained (1-100000).'),
    ('otp.limit.overall.burst', '60', 'OTP codes issued at once by all API keys together after a quiet spell (1-100000).');

CREATE FUNCTION whatsapp_handler._take_otp_token(p_bucket text, p_per_minute integer, p_burst integer)
RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
DECLARE
    v_left double precision;
BEGIN
    -- One statement: the row (made full on first use) is locked by the upsert, refilled for the
    -- time since it was last touched, and a token taken. clock_timestamp(), not now(): a caller
    -- that waited on the lock must not be credited with time before the holder's update.
    INSERT INTO otp_rate_buckets AS b (bucket, tokens, updated_at)
    VALUES (p_bucket, p_burst - 1, clock_timestamp())
    ON CONFLICT (bucket) DO UPDATE
        SET tokens = least(p_burst::double precision,
                           b.tokens + greatest(extract(epoch FROM clock_timestamp() - b.updated_at)::double precision, 0)
                                      * p_per_minute / 60.0) - 1,
            updated_at = clock_timestamp()
    RETURNING b.tokens INTO v_left;
    IF v_left >= 0 THEN
        RETURN 0;
    END IF;
    -- Empty: the caller raises, and its rollback puts the row back as it was.
    RETURN greatest(ceil(-v_left * 60.0 / p_per_minute), 1)::integer;
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler._take_otp_token(text, integer, integer) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler._take_otp_token(text, integer, integer) IS
    'Internal: takes one token from a bucket refilled at p_per_minute up to p_burst, holding its row lock to the end of the transaction. Returns 0 when a token was taken, otherwise the whole seconds until one will be there (the caller must then raise so that nothing is kept). Raises nothing.';

COMMIT;
