-- Deploy whatsapp_handler:analytics/user_keys to pg
-- requires: core/schema core/pgcrypto core/assert_function core/e164
-- The secret behind the analysts' pseudonymous user keys, made at deploy from the
-- CSPRNG and readable by the owner only, and the two functions that pseudonymise:
-- _user_key (HMAC-SHA256 of the user id, its first 128 bits as a uuid) and _country_code (the E.164 calling code).
BEGIN;
SET LOCAL ROLE whatsapp_handler_owner;

CREATE TABLE whatsapp_handler.analytics_keys (
    id         boolean PRIMARY KEY DEFAULT true CONSTRAINT analytics_keys_one_row CHECK (id),
    key        bytea NOT NULL DEFAULT public.gen_random_bytes(32)
               CONSTRAINT analytics_keys_key_length CHECK (octet_length(key) >= 32),
    created_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE whatsapp_handler.analytics_keys IS 'One row: the secret key of the analysts'' pseudonymous user keys (HMAC-SHA256). Owner only; rotating it (UPDATE ... SET key = gen_random_bytes(32)) changes every key from the next refresh of analytics_users on (docs/analytics.md).';
COMMENT ON COLUMN whatsapp_handler.analytics_keys.id IS 'Always true: the table holds one row.';
COMMENT ON COLUMN whatsapp_handler.analytics_keys.key IS '32 random bytes from pgcrypto''s CSPRNG, made at deploy.';
COMMENT ON COLUMN whatsapp_handler.analytics_keys.created_at IS 'When the key was made.';
INSERT INTO whatsapp_handler.analytics_keys DEFAULT VALUES;

CREATE FUNCTION whatsapp_handler._user_key(p_user_id bigint)
RETURNS uuid
LANGUAGE sql STABLE
SET search_path = pg_catalog, whatsapp_handler, pg_temp
-- 128 bits of the HMAC (a truncation RFC 2104 section 5 allows) in a uuid: half the width of the hex
-- text, and hashed and compared as two machine words, which halves the per-user grouping analysts run.
AS $$
    SELECT encode(substr(public.hmac(convert_to(p_user_id::text, 'UTF8'), k.key, 'sha256'), 1, 16), 'hex')::uuid
    FROM analytics_keys k
$$;
REVOKE ALL ON FUNCTION whatsapp_handler._user_key(bigint) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler._user_key(bigint) IS
    'Internal: the pseudonymous key of a user shown to analysts: the first 128 bits of HMAC-SHA256 of the user id under analytics_keys.key, as a uuid. Stable while the key is; not reversible without it.';

-- Country calling codes (ITU-T E.164): 1 and 7 are one digit, these are two, all others three.
CREATE FUNCTION whatsapp_handler._country_code(p_phone text)
RETURNS text
LANGUAGE sql IMMUTABLE
-- No SET search_path, so that it is inlined into the refresh's query (with _is_e164).
AS $$
    SELECT CASE
        WHEN p_phone IS NULL OR NOT whatsapp_handler._is_e164(p_phone) THEN NULL
        WHEN substr(p_phone, 2, 1) IN ('1', '7') THEN substr(p_phone, 1, 2)
        WHEN substr(p_phone, 2, 2) IN ('20', '27', '30', '31', '32', '33', '34', '36', '39', '40', '41', '43', '44',
                                       '45', '46', '47', '48', '49', '51', '52', '53', '54', '55', '56', '57', '58',
                                       '60', '61', '62', '63', '64', '65', '66', '81', '82', '84', '86', '90', '91',
                                       '92', '93', '94', '95', '98') THEN substr(p_phone, 1, 3)
        ELSE substr(p_phone, 1, 4)
    END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler._country_code(text) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler._country_code(text) IS
    'Internal: the country calling code of an E.164 number with its plus (+44 for +447700900123, +1 for any NANP number, +351 for Portugal); NULL for NULL or a malformed number. The most of a phone number analysts may see.';

COMMIT;
