-- Deploy whatsapp_handler:sending/api_keys to pg
-- requires: core/channels core/pgcrypto core/roles
-- The business's API keys. Each is scoped to channels and to what it may do (send, read,
-- manage), so that one brand's backend can neither send on, read nor change another
-- brand's numbers. Only a key's SHA-256 is kept: the relay hashes what it is presented and
-- passes the hash, so a key never reaches the server's logs either.
BEGIN;
SET LOCAL ROLE whatsapp_handler_owner;

CREATE TABLE whatsapp_handler.api_keys (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        text NOT NULL CONSTRAINT api_keys_name_shape CHECK (name ~ '^[a-z0-9][a-z0-9._-]{0,62}$'),
    key_hash    bytea NOT NULL CONSTRAINT api_keys_key_hash_sha256 CHECK (octet_length(key_hash) = 32),
    channel_ids bigint[] NOT NULL
                CONSTRAINT api_keys_channels_listed
                CHECK (cardinality(channel_ids) BETWEEN 1 AND 1000 AND array_position(channel_ids, NULL) IS NULL),
    scopes      text[] NOT NULL
                CONSTRAINT api_keys_scopes_known
                CHECK (cardinality(scopes) >= 1 AND scopes <@ ARRAY['send', 'read', 'manage']),
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz,
    CONSTRAINT api_keys_name_unique UNIQUE (name),
    CONSTRAINT api_keys_key_hash_unique UNIQUE (key_hash)
);
COMMENT ON TABLE whatsapp_handler.api_keys IS 'Keys of the business API (/v1/messages and the people API): each may act only on its channels and within its scopes. The key itself is shown once, at creation.';
COMMENT ON COLUMN whatsapp_handler.api_keys.key_hash IS 'SHA-256 of the key; the key is never stored.';
COMMENT ON COLUMN whatsapp_handler.api_keys.scopes IS 'send: queue messages; read: a message''s status; manage: people (preferences, block, export, erase, consent).';

-- For the DBA (or `whatsapp-handler api-key create`, which runs as the deployer): the key
-- is returned here once and exists nowhere else.
CREATE FUNCTION whatsapp_handler.api_key_create(p_name text, p_channel_ids bigint[],
                                                p_scopes text[] DEFAULT ARRAY['send', 'read'],
                                                OUT id bigint, OUT api_key text)
LANGUAGE plpgsql
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
DECLARE
    v_unknown bigint;
BEGIN
    IF p_name IS NULL OR p_name !~ '^[a-z0-9][a-z0-9._-]{0,62}$' THEN
        RAISE EXCEPTION 'malformed API key name' USING ERRCODE = 'WH008',
            HINT = 'A key''s name is 1-63 of lower-case letters, digits, dot, dash and underscore, e.g. billing-backend.';
    END IF;
    IF coalesce(cardinality(p_scopes), 0) = 0 OR NOT p_scopes <@ ARRAY['send', 'read', 'manage'] THEN
        RAISE EXCEPTION 'unknown API key scope in %', coalesce(array_to_string(p_scopes, ','), 'NULL') USING ERRCODE = 'WH008',
            HINT = 'Scopes are send, read and manage.';
    END IF;
    IF coalesce(cardinality(p_channel_ids), 0) = 0 THEN
        RAISE EXCEPTION 'an API key needs at least one channel' USING ERRCODE = 'WH008',
            HINT = 'Pass the ids of the channels the key may act on (whatsapp_handler.channels).';
    END IF;
    SELECT c INTO v_unknown FROM unnest(p_channel_ids) c WHERE NOT EXISTS (SELECT FROM channels WHERE channels.id = c) LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'unknown channel %', coalesce(v_unknown::text, 'NULL') USING ERRCODE = 'WH003',
            HINT = 'Pass the ids of existing channels (whatsapp_handler.channels).';
    END IF;
    api_key := 'whk_' || encode(public.gen_random_bytes(32), 'hex');
    INSERT INTO api_keys (name, key_hash, channel_ids, scopes)
    VALUES (p_name, sha256(convert_to(api_key, 'UTF8')), ARRAY(SELECT DISTINCT c FROM unnest(p_channel_ids) c ORDER BY c),
            ARRAY(SELECT DISTINCT s FROM unnest(p_scopes) s ORDER BY s))
    RETURNING api_keys.id INTO id;
EXCEPTION WHEN unique_violation THEN
    RAISE EXCEPTION 'an API key named % exists', p_name USING ERRCODE = 'WH008',
        HINT = 'Choose another name, or revoke the old key first (api_key_revoke) and pick a new name.';
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler.api_key_create(text, bigint[], text[]) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler.api_key_create(text, bigint[], text[]) IS
    'Creates an API key for these channels and scopes (send, read, manage) and returns (id, api_key): the only time the key is shown. For the DBA. Raises WH008 for a malformed name, an unknown scope, no channel or a name in use, WH003 for an unknown channel.';

CREATE FUNCTION whatsapp_handler.api_key_revoke(p_name text)
RETURNS boolean
LANGUAGE sql
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
    UPDATE api_keys SET revoked_at = now() WHERE name = p_name AND revoked_at IS NULL RETURNING true
$$;
REVOKE ALL ON FUNCTION whatsapp_handler.api_key_revoke(text) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler.api_key_revoke(text) IS
    'Revokes the API key of that name at once (its next request is refused); returns true, or NULL when there is no live key of that name. For the DBA. Raises nothing.';

-- Every business API function starts here: who is asking, and may they act on this channel.
-- One answer for a key that does not exist and one that was revoked.
CREATE FUNCTION whatsapp_handler._api_key_check(p_key_hash bytea, p_channel_id bigint, p_scope text)
RETURNS bigint
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
DECLARE
    v_key api_keys;
BEGIN
    SELECT * INTO v_key FROM api_keys WHERE key_hash = p_key_hash AND revoked_at IS NULL;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'unknown or revoked API key' USING ERRCODE = 'WH060',
            HINT = 'Send the key in Authorization: Bearer <key>; ask the DBA for a key (whatsapp-handler api-key create).';
    END IF;
    IF NOT p_scope = ANY (v_key.scopes) OR p_channel_id IS NULL OR NOT p_channel_id = ANY (v_key.channel_ids) THEN
        RAISE EXCEPTION 'this API key may not % on channel %', p_scope, coalesce(p_channel_id::text, 'NULL') USING ERRCODE = 'WH061',
            HINT = 'Each key acts only on its own channels and scopes (whatsapp_handler.api_keys); use the key of that channel''s brand.';
    END IF;
    RETURN v_key.id;
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler._api_key_check(bytea, bigint, text) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler._api_key_check(bytea, bigint, text) IS
    'Internal: the id of the live API key whose SHA-256 is p_key_hash, when it may act on channel p_channel_id within scope p_scope. Raises WH060 for an unknown or revoked key, WH061 for a channel or scope outside the key''s.';

COMMIT;
