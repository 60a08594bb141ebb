-- Deploy whatsapp_handler:people/api to pg
-- requires: sending/api_keys consent/consents users/register_user users/set_user_preferences users/block_user users/erase_user conversation/converse messages/status_events otp/challenges core/correlation_id
-- The people API of the business's backend (scope manage, docs/sending.md "People"): consent,
-- preferences, block, export and erasure of a person, addressed by phone on one of the key's
-- channels, over the user functions a DBA calls by id. People are global (one row per phone)
-- but a key speaks for one brand: it must neither learn nor change what another brand holds.
-- So a person the key's channel has no open conversation with is unknown (WH071), whoever
-- else knows them; an export holds what the brand holds; an erasure reaches the brand alone
-- while another brand knows the person.
BEGIN;
SET LOCAL ROLE whatsapp_handler_owner;

-- Every people call starts here. The key is checked before the request's shape, so that a
-- stranger learns nothing from the answers to malformed requests.
CREATE FUNCTION whatsapp_handler._people_request(p_key_hash bytea, p_request jsonb, p_fields text[], p_correlation_id text,
                                                 OUT channel_id bigint, OUT phone text)
LANGUAGE plpgsql
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
DECLARE
    v_unknown text;
BEGIN
    IF p_correlation_id IS NOT NULL THEN
        PERFORM set_config('whatsapp_handler.correlation_id', left(p_correlation_id, 128), true);
    END IF;
    IF jsonb_typeof(p_request -> 'channel_id') IS DISTINCT FROM 'number' OR (p_request ->> 'channel_id') !~ '^[1-9][0-9]{0,17}$' THEN
        PERFORM _api_key_check(p_key_hash, NULL, 'manage');
    END IF;
    channel_id := (p_request ->> 'channel_id')::bigint;
    PERFORM _api_key_check(p_key_hash, channel_id, 'manage');
    SELECT k INTO v_unknown FROM jsonb_object_keys(p_request) k
    WHERE NOT k = ANY (p_fields || ARRAY['channel_id', 'phone']) ORDER BY k LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'unknown field % in a people request', quote_literal(left(v_unknown, 64)) USING ERRCODE = 'WH072',
            HINT = format('This request takes channel_id, phone%s.',
                          coalesce(nullif(', ' || array_to_string(p_fields, ', '), ', '), ''));
    END IF;
    phone := _check_phone(CASE WHEN jsonb_typeof(p_request -> 'phone') = 'string' THEN p_request ->> 'phone' END);
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler._people_request(bytea, jsonb, text[], text) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler._people_request(bytea, jsonb, text[], text) IS
    'Internal: checks a people API request (a JSON object with channel_id, phone and the fields p_fields) for the key whose SHA-256 is p_key_hash, scope manage, and returns (channel_id, phone). Raises WH060 unknown or revoked key, WH061 a channel outside the key''s or no scope manage, WH072 an unknown field, WH001 a phone not in E.164.';

-- Whom the key may manage: a person with an open conversation on its channel (they wrote to
-- it, were sent to from it, or the business recorded their consent on it). A person never
-- met there, one only another brand knows, one the brand erased (their conversation is
-- closed) and one erased (no phone) get the same answer.
CREATE FUNCTION whatsapp_handler._person_on_channel(p_channel_id bigint, p_phone text)
RETURNS whatsapp_handler.conversations
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
DECLARE
    v_conv conversations;
BEGIN
    SELECT c.* INTO v_conv
    FROM users u JOIN conversations c ON c.user_id = u.id AND c.channel_id = p_channel_id
    WHERE u.phone = p_phone AND c.state <> 'closed';
    IF NOT FOUND THEN
        RAISE EXCEPTION 'unknown person on channel %', p_channel_id USING ERRCODE = 'WH071',
            HINT = 'A channel knows a person once they wrote to it, were sent a message on it, or their consent was recorded on it (POST /v1/people/consent); an erased person is unknown.';
    END IF;
    RETURN v_conv;
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler._person_on_channel(bigint, text) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler._person_on_channel(bigint, text) IS
    'Internal: the open conversation of the person with phone p_phone on the channel. Raises WH071 when there is none (never met there, erased by the brand or as a person), whoever else knows them.';

-- A block set through the API carries its brand in the reason, so that a brand lifts only
-- its own blocks (the block itself is the person's, for every brand: docs/sending.md).
CREATE FUNCTION whatsapp_handler._api_block_mark(p_channel_id bigint)
RETURNS text
LANGUAGE sql STABLE
AS $$
    SELECT 'api:' OPERATOR(pg_catalog.||) whatsapp_handler._brand(p_channel_id) OPERATOR(pg_catalog.||) ': '
$$;
REVOKE ALL ON FUNCTION whatsapp_handler._api_block_mark(bigint) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler._api_block_mark(bigint) IS
    'Internal: how a block reason set through the people API starts for the brand of the channel (api:<brand>: ). Raises nothing.';

CREATE FUNCTION whatsapp_handler.people_consent(p_key_hash bytea, p_request jsonb, p_correlation_id text DEFAULT NULL,
                                                OUT status text, OUT changed boolean)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
DECLARE
    v_req     record;
    v_user_id bigint;
    v_conv    conversations;
BEGIN
    SELECT * INTO v_req FROM _people_request(p_key_hash, p_request, ARRAY['opt_in', 'source'], p_correlation_id);
    -- The business names where it heard the person; "api:" keeps it from passing for the
    -- person's own STOP or the provider's signal (keyword:stop, provider:131050).
    IF jsonb_typeof(p_request -> 'opt_in') IS DISTINCT FROM 'boolean' OR jsonb_typeof(p_request -> 'source') IS DISTINCT FROM 'string'
       OR (p_request ->> 'source') !~ '^[a-z0-9][a-z0-9_.-]{0,59}$' THEN
        RAISE EXCEPTION 'a consent needs opt_in (true or false) and a source' USING ERRCODE = 'WH072',
            HINT = 'source is 1-60 of lower-case letters, digits and _.- naming where the person gave or withdrew consent, e.g. checkout-form; it is recorded as api:<source>.';
    END IF;
    -- Two statements: a query does not see the rows a function it calls inserts.
    SELECT r.user_id INTO v_user_id FROM register_user(v_req.phone, v_req.channel_id) r;
    SELECT * INTO STRICT v_conv FROM conversations WHERE user_id = v_user_id AND conversations.channel_id = v_req.channel_id;
    IF v_conv.state = 'closed' THEN
        -- The brand erased them and meets them again: as when they write again (_converse),
        -- the conversation starts anew.
        PERFORM _set_state(v_conv.id, 'new');
    END IF;
    changed := _record_consent(v_user_id, v_req.channel_id, (p_request ->> 'opt_in')::boolean, 'api:' || (p_request ->> 'source'));
    status := CASE WHEN (p_request ->> 'opt_in')::boolean THEN 'opted_in' ELSE 'opted_out' END;
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler.people_consent(bytea, jsonb, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION whatsapp_handler.people_consent(bytea, jsonb, text) TO whatsapp_handler_relay;
COMMENT ON FUNCTION whatsapp_handler.people_consent(bytea, jsonb, text) IS
    'POST /v1/people/consent: records the consent (p_request: channel_id, phone, opt_in, source) of a person on a channel of the key (SHA-256 p_key_hash, scope manage), registering a phone the channel never met, and emits consent.changed when the status changes; returns (status, changed). Raises WH060, WH061, WH072 (unknown field, opt_in or source), WH001 phone, WH003 inactive channel.';

CREATE FUNCTION whatsapp_handler.people_preferences(p_key_hash bytea, p_request jsonb, p_correlation_id text DEFAULT NULL)
RETURNS jsonb
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
DECLARE
    v_req  record;
    v_conv conversations;
BEGIN
    SELECT * INTO v_req FROM _people_request(p_key_hash, p_request, '{}', p_correlation_id);
    v_conv := _person_on_channel(v_req.channel_id, v_req.phone);
    RETURN (SELECT to_jsonb(p) - 'user_id' - 'updated_at' FROM user_preferences p WHERE p.user_id = v_conv.user_id);
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler.people_preferences(bytea, jsonb, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION whatsapp_handler.people_preferences(bytea, jsonb, text) TO whatsapp_handler_relay;
COMMENT ON FUNCTION whatsapp_handler.people_preferences(bytea, jsonb, text) IS
    'GET /v1/people/preferences: the preferences of a person the key''s channel knows (p_request: channel_id, phone; key SHA-256 p_key_hash, scope manage). Raises WH060, WH061, WH072, WH001, WH071 unknown person on the channel.';

-- Preferences are the person's, one set for every brand. notifications_enabled is their own
-- STOP and START; a brand records its consent on its channels instead (people_consent).
CREATE FUNCTION whatsapp_handler.people_set_preferences(p_key_hash bytea, p_request jsonb, p_correlation_id text DEFAULT NULL)
RETURNS jsonb
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
DECLARE
    v_req  record;
    v_conv conversations;
BEGIN
    SELECT * INTO v_req FROM _people_request(p_key_hash, p_request, ARRAY['preferences'], p_correlation_id);
    IF jsonb_typeof(p_request -> 'preferences') IS DISTINCT FROM 'object' THEN
        RAISE EXCEPTION 'preferences must be a JSON object' USING ERRCODE = 'WH072',
            HINT = 'Send {"channel_id": ..., "phone": ..., "preferences": {"language": "pt-BR"}}.';
    END IF;
    IF p_request -> 'preferences' ? 'notifications_enabled' THEN
        RAISE EXCEPTION 'notifications_enabled is the person''s own choice, made by their opt-out and opt-in keywords, for every brand' USING ERRCODE = 'WH073',
            HINT = 'Record the person''s consent on your channel instead: POST /v1/people/consent with opt_in false or true.';
    END IF;
    v_conv := _person_on_channel(v_req.channel_id, v_req.phone);
    RETURN set_user_preferences(v_conv.user_id, p_request -> 'preferences');
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler.people_set_preferences(bytea, jsonb, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION whatsapp_handler.people_set_preferences(bytea, jsonb, text) TO whatsapp_handler_relay;
COMMENT ON FUNCTION whatsapp_handler.people_set_preferences(bytea, jsonb, text) IS
    'PATCH /v1/people/preferences: a partial update (p_request: channel_id, phone, preferences: language, timezone, delay_threshold_minutes, auto_claim) of the preferences of a person the key''s channel knows, as set_user_preferences does; returns them all. Raises WH060, WH061, WH072, WH001, WH071 unknown person, WH073 notifications_enabled (the person''s own), WH008 unknown key or bad value, WH004 blocked.';

-- A block is global (users.blocked_at): the person gets nothing from any brand. A brand may
-- set one, and lift only the ones it set (docs/sending.md, "Block").
CREATE FUNCTION whatsapp_handler.people_block(p_key_hash bytea, p_request jsonb, p_correlation_id text DEFAULT NULL,
                                              OUT blocked boolean, OUT changed boolean)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
DECLARE
    v_req  record;
    v_conv conversations;
BEGIN
    SELECT * INTO v_req FROM _people_request(p_key_hash, p_request, ARRAY['reason'], p_correlation_id);
    IF jsonb_typeof(p_request -> 'reason') IS DISTINCT FROM 'string'
       OR char_length(trim(p_request ->> 'reason')) NOT BETWEEN 1 AND 400 THEN
        RAISE EXCEPTION 'a block needs a reason of 1 to 400 characters' USING ERRCODE = 'WH072',
            HINT = 'Say why, e.g. "abusive messages reported by an agent".';
    END IF;
    v_conv := _person_on_channel(v_req.channel_id, v_req.phone);
    changed := block_user(v_conv.user_id, _api_block_mark(v_req.channel_id) || trim(p_request ->> 'reason'));
    blocked := true;
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler.people_block(bytea, jsonb, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION whatsapp_handler.people_block(bytea, jsonb, text) TO whatsapp_handler_relay;
COMMENT ON FUNCTION whatsapp_handler.people_block(bytea, jsonb, text) IS
    'POST /v1/people/block: blocks a person the key''s channel knows (p_request: channel_id, phone, reason), for every brand (users.blocked_at), the reason recorded as api:<brand>: <reason>, and emits user.blocked; returns (blocked, changed), changed false when already blocked. Raises WH060, WH061, WH072 (unknown field or reason), WH001, WH071 unknown person.';

CREATE FUNCTION whatsapp_handler.people_unblock(p_key_hash bytea, p_request jsonb, p_correlation_id text DEFAULT NULL,
                                                OUT blocked boolean, OUT changed boolean)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
DECLARE
    v_req  record;
    v_conv conversations;
    v_user users;
BEGIN
    SELECT * INTO v_req FROM _people_request(p_key_hash, p_request, '{}', p_correlation_id);
    v_conv := _person_on_channel(v_req.channel_id, v_req.phone);
    v_user := _lock_user(v_conv.user_id, p_allow_blocked => true);
    IF v_user.blocked_at IS NOT NULL AND NOT starts_with(v_user.blocked_reason, _api_block_mark(v_req.channel_id)) THEN
        RAISE EXCEPTION 'this block was not set by your brand' USING ERRCODE = 'WH074',
            HINT = 'A brand lifts only the blocks it set through the API; the operator''s and other brands'' blocks are the operator''s to lift (unblock_user).';
    END IF;
    changed := unblock_user(v_user.id);
    blocked := false;
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler.people_unblock(bytea, jsonb, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION whatsapp_handler.people_unblock(bytea, jsonb, text) TO whatsapp_handler_relay;
COMMENT ON FUNCTION whatsapp_handler.people_unblock(bytea, jsonb, text) IS
    'POST /v1/people/unblock: lifts the block the key''s brand set through the API on a person its channel knows (p_request: channel_id, phone) and emits user.unblocked; returns (blocked false, changed), changed false when not blocked. Raises WH060, WH061, WH072, WH001, WH071 unknown person, WH074 a block set by the operator or another brand.';

-- What the brand holds, not what the person is to others: the brand's channels' conversations,
-- consents, OTP challenges, messages and their statuses, the phone and name the brand met
-- them by, and the person's preferences (one set, read by every brand that knows them).
-- Left out: when and where the person first appeared, their activity and terms as a person,
-- and a block's reason unless the brand set it, which would tell of other brands.
CREATE FUNCTION whatsapp_handler.people_export(p_key_hash bytea, p_request jsonb, p_correlation_id text DEFAULT NULL)
RETURNS jsonb
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
DECLARE
    v_req      record;
    v_conv     conversations;
    v_brand    text;
    v_channels bigint[];
    v_mark     text;
BEGIN
    SELECT * INTO v_req FROM _people_request(p_key_hash, p_request, '{}', p_correlation_id);
    v_conv := _person_on_channel(v_req.channel_id, v_req.phone);
    v_brand := _brand(v_req.channel_id);
    SELECT array_agg(id ORDER BY id) INTO STRICT v_channels FROM channels WHERE _brand(id) = v_brand;
    v_mark := _api_block_mark(v_req.channel_id);
    RETURN (
        SELECT jsonb_build_object(
            'format', 'whatsapp-handler.brand-export/1',
            'exported_at', now(),
            'brand', v_brand,
            'channel_ids', to_jsonb(v_channels),
            'person', jsonb_build_object(
                'phone', u.phone, 'display_name', u.display_name, 'blocked', u.blocked_at IS NOT NULL,
                'blocked_at', CASE WHEN starts_with(u.blocked_reason, v_mark) THEN u.blocked_at END,
                'blocked_reason', CASE WHEN starts_with(u.blocked_reason, v_mark) THEN substr(u.blocked_reason, char_length(v_mark) + 1) END),
            'preferences', (SELECT to_jsonb(p) - 'user_id' FROM user_preferences p WHERE p.user_id = u.id),
            'conversations', (SELECT coalesce(jsonb_agg(to_jsonb(c) - 'user_id' ORDER BY c.id), '[]')
                              FROM conversations c WHERE c.user_id = u.id AND c.channel_id = ANY (v_channels)),
            'consents', (SELECT coalesce(jsonb_agg(to_jsonb(s) - 'user_id' ORDER BY s.channel_id), '[]')
                         FROM consents s WHERE s.user_id = u.id AND s.channel_id = ANY (v_channels)),
            'otp_challenges', (SELECT coalesce(jsonb_agg(to_jsonb(o) - 'user_id' - 'code_hash' ORDER BY o.id), '[]')
                               FROM otp_challenges o WHERE o.user_id = u.id AND o.channel_id = ANY (v_channels)),
            'messages', (SELECT coalesce(jsonb_agg(to_jsonb(m) - 'user_id' ORDER BY m.created_at, m.id), '[]')
                         FROM messages m WHERE m.user_id = u.id AND m.channel_id = ANY (v_channels)),
            'message_statuses', (SELECT coalesce(jsonb_agg(jsonb_build_object('message_id', s.message_id, 'status', s.status,
                                                                              'occurred_at', s.occurred_at, 'errors', s.errors)
                                                           ORDER BY s.occurred_at, s.id), '[]')
                                 FROM message_status_events s
                                 JOIN message_keys k ON k.channel_id = s.channel_id AND k.provider_message_id = s.provider_message_id
                                 JOIN messages m ON m.id = k.message_id AND m.created_at = k.message_created_at
                                 WHERE m.user_id = u.id AND m.channel_id = ANY (v_channels)))
        FROM users u WHERE u.id = v_conv.user_id);
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler.people_export(bytea, jsonb, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION whatsapp_handler.people_export(bytea, jsonb, text) TO whatsapp_handler_relay;
COMMENT ON FUNCTION whatsapp_handler.people_export(bytea, jsonb, text) IS
    'POST /v1/people/export: what the key''s brand holds about a person its channel knows (p_request: channel_id, phone), as one JSON document (format whatsapp-handler.brand-export/1): phone, name, whether blocked (when and why only for the brand''s own block), preferences, and the conversations, consents, OTP challenges (without hashes), messages and statuses of every channel of the brand. Raises WH060, WH061, WH072, WH001, WH071 unknown person.';

-- As "DELETE" then "YES" in a conversation, through the same decision (_erase_on_request): the
-- brand's part while another brand knows the person, the whole person once no other does
-- (docs/security.md). The answer is
-- the same either way, so that it tells nothing of other brands.
CREATE FUNCTION whatsapp_handler.people_erase(p_key_hash bytea, p_request jsonb, p_correlation_id text DEFAULT NULL)
RETURNS boolean
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
DECLARE
    v_req  record;
    v_conv conversations;
BEGIN
    SELECT * INTO v_req FROM _people_request(p_key_hash, p_request, '{}', p_correlation_id);
    v_conv := _person_on_channel(v_req.channel_id, v_req.phone);
    PERFORM _lock_user(v_conv.user_id, p_allow_blocked => true);
    PERFORM _erase_on_request(v_conv.id);
    RETURN true;
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler.people_erase(bytea, jsonb, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION whatsapp_handler.people_erase(bytea, jsonb, text) TO whatsapp_handler_relay;
COMMENT ON FUNCTION whatsapp_handler.people_erase(bytea, jsonb, text) IS
    'POST /v1/people/erase: erases what the key''s brand holds about a person its channel knows (p_request: channel_id, phone), as _erase_user_from_brand (user.brand_erased) while another brand knows them, and the whole person as erase_user (user.erased) once no other brand does; returns true. Afterwards the person is unknown to the brand (WH071). Raises WH060, WH061, WH072, WH001, WH071 unknown person.';

COMMIT;
