-- Deploy whatsapp_handler:campaigns/api to pg
-- requires: campaigns/campaigns campaigns/dispatch sending/api_keys
-- The campaigns API of the business's backend (/v1/campaigns, docs/relay.md): each campaign
-- function of campaigns/campaigns behind an API key, scope send to change a campaign and read
-- to look at one. A key reaches only the campaigns of its channels: any other campaign gets
-- the answer an id nobody created gets (WH076), so that ids tell a stranger nothing. What a
-- campaign may do stays the admin functions' to say: these only decide who may ask.
BEGIN;
SET LOCAL ROLE whatsapp_handler_owner;

-- Every call on an existing campaign starts here: the key first (an unknown key learns
-- nothing, not even whether the campaign exists), then the campaign as the key's channels
-- see it, then the scope (a key of the campaign's own brand may learn that it exists).
CREATE FUNCTION whatsapp_handler._api_campaign(p_key_hash bytea, p_campaign_id bigint, p_scope text,
                                               p_correlation_id text DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
DECLARE
    v_key        api_keys;
    v_channel_id bigint;
BEGIN
    IF p_correlation_id IS NOT NULL THEN
        PERFORM set_config('whatsapp_handler.correlation_id', left(p_correlation_id, 128), true);
    END IF;
    SELECT * INTO v_key FROM api_keys WHERE key_hash = p_key_hash AND revoked_at IS NULL;
    IF NOT FOUND THEN
        PERFORM _api_key_check(p_key_hash, NULL, p_scope);
    END IF;
    SELECT c.channel_id INTO v_channel_id FROM campaigns c
    WHERE c.id = p_campaign_id AND c.channel_id = ANY (v_key.channel_ids);
    IF NOT FOUND THEN
        RAISE EXCEPTION 'unknown campaign %', coalesce(p_campaign_id::text, 'NULL') USING ERRCODE = 'WH076',
            HINT = 'Use the id POST /v1/campaigns returned, with a key of the campaign''s channel.';
    END IF;
    RETURN _api_key_check(p_key_hash, v_channel_id, p_scope);
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler._api_campaign(bytea, bigint, text, text) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler._api_campaign(bytea, bigint, text, text) IS
    'Internal: checks that the live key whose SHA-256 is p_key_hash may act with scope p_scope on campaign p_campaign_id (one of its channels'' campaigns) and sets the request''s correlation id; returns the key''s id. Raises WH060 unknown or revoked key, WH076 a campaign that does not exist or is on another channel (the same answer), WH061 the key lacks the scope.';

CREATE FUNCTION whatsapp_handler.api_campaign_create(p_key_hash bytea, p_request jsonb, p_correlation_id text DEFAULT NULL)
RETURNS jsonb
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
DECLARE
    v_key_id bigint;
    v_id     bigint;
BEGIN
    IF p_correlation_id IS NOT NULL THEN
        PERFORM set_config('whatsapp_handler.correlation_id', left(p_correlation_id, 128), true);
    END IF;
    -- The channel decides whether the key may create at all, so it is read before the rest of
    -- the request; a channel_id that is not a plain id could name a channel in another
    -- spelling (1.0) and is refused as malformed, to a known key only.
    IF jsonb_typeof(p_request -> 'channel_id') IS DISTINCT FROM 'number'
       OR (p_request ->> 'channel_id') !~ '^[1-9][0-9]{0,17}$' THEN
        IF NOT EXISTS (SELECT FROM api_keys WHERE key_hash = p_key_hash AND revoked_at IS NULL) THEN
            PERFORM _api_key_check(p_key_hash, NULL, 'send');
        END IF;
        RAISE EXCEPTION 'malformed campaign: channel_id is not a channel id' USING ERRCODE = 'WH079',
            HINT = 'Pass {"name", "channel_id": <the id of a channel of your key>, "template": {"name", "language"}} and optionally "components", "per_second", "daily_budget", "starts_at".';
    END IF;
    v_key_id := _api_key_check(p_key_hash, (p_request ->> 'channel_id')::bigint, 'send');
    v_id := campaign_create(p_request, v_key_id);
    RETURN (SELECT jsonb_build_object('id', c.id, 'state', c.state) FROM campaigns c WHERE c.id = v_id);
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler.api_campaign_create(bytea, jsonb, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION whatsapp_handler.api_campaign_create(bytea, jsonb, text) TO whatsapp_handler_relay;
COMMENT ON FUNCTION whatsapp_handler.api_campaign_create(bytea, jsonb, text) IS
    'POST /v1/campaigns: creates a campaign (p_request as campaign_create takes it) on a channel of the key whose SHA-256 is p_key_hash (scope send), recording the key; returns {id, state}. Raises WH060 unknown or revoked key, WH061 a channel outside the key''s or no scope send, WH079 malformed (a channel_id that is not an id included), and what campaign_create raises: WH003 inactive channel, WH065 unknown template, WH062 components of the wrong shape.';

CREATE FUNCTION whatsapp_handler.api_campaign_upload(p_key_hash bytea, p_campaign_id bigint, p_rows jsonb,
                                                     p_skip_invalid boolean DEFAULT false, p_correlation_id text DEFAULT NULL)
RETURNS jsonb
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
BEGIN
    PERFORM _api_campaign(p_key_hash, p_campaign_id, 'send', p_correlation_id);
    RETURN campaign_upload(p_campaign_id, p_rows, coalesce(p_skip_invalid, false));
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler.api_campaign_upload(bytea, bigint, jsonb, boolean, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION whatsapp_handler.api_campaign_upload(bytea, bigint, jsonb, boolean, text) TO whatsapp_handler_relay;
COMMENT ON FUNCTION whatsapp_handler.api_campaign_upload(bytea, bigint, jsonb, boolean, text) IS
    'POST /v1/campaigns/{id}/recipients: campaign_upload for a campaign of the key''s channels (scope send); returns {rows, accepted, duplicates, invalid, first_position}. Raises WH060, WH076 unknown campaign or another channel''s, WH061 no scope send, WH077 campaign past scheduled, WH078 bad rows (DETAIL row=N problem=...) or too many.';

CREATE FUNCTION whatsapp_handler.api_campaign_audience(p_key_hash bytea, p_campaign_id bigint, p_filter jsonb,
                                                       p_correlation_id text DEFAULT NULL)
RETURNS jsonb
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
BEGIN
    PERFORM _api_campaign(p_key_hash, p_campaign_id, 'send', p_correlation_id);
    RETURN campaign_audience(p_campaign_id, p_filter);
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler.api_campaign_audience(bytea, bigint, jsonb, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION whatsapp_handler.api_campaign_audience(bytea, bigint, jsonb, text) TO whatsapp_handler_relay;
COMMENT ON FUNCTION whatsapp_handler.api_campaign_audience(bytea, bigint, jsonb, text) IS
    'POST /v1/campaigns/{id}/audience: campaign_audience (the people the channel knows matching p_filter) for a campaign of the key''s channels (scope send); returns the upload''s result. Raises WH060, WH076, WH061, WH077, WH078 no one matches, WH079 malformed filter.';

CREATE FUNCTION whatsapp_handler.api_campaign_control(p_key_hash bytea, p_campaign_id bigint, p_action text,
                                                      p_correlation_id text DEFAULT NULL)
RETURNS jsonb
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
BEGIN
    PERFORM _api_campaign(p_key_hash, p_campaign_id, 'send', p_correlation_id);
    RETURN campaign_control(p_campaign_id, p_action);
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler.api_campaign_control(bytea, bigint, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION whatsapp_handler.api_campaign_control(bytea, bigint, text, text) TO whatsapp_handler_relay;
COMMENT ON FUNCTION whatsapp_handler.api_campaign_control(bytea, bigint, text, text) IS
    'POST /v1/campaigns/{id}/start|pause|resume|cancel: campaign_control for a campaign of the key''s channels (scope send); returns {id, state, reason}. Raises WH060, WH076, WH061, WH077 the state does not allow it (named), WH065/WH066/WH067 the template cannot be sent, WH079 unknown action.';

CREATE FUNCTION whatsapp_handler.api_campaign_results(p_key_hash bytea, p_campaign_id bigint)
RETURNS jsonb
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
BEGIN
    PERFORM _api_campaign(p_key_hash, p_campaign_id, 'read');
    RETURN campaign_results(p_campaign_id);
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler.api_campaign_results(bytea, bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION whatsapp_handler.api_campaign_results(bytea, bigint) TO whatsapp_handler_relay;
COMMENT ON FUNCTION whatsapp_handler.api_campaign_results(bytea, bigint) IS
    'GET /v1/campaigns/{id}: campaign_results (state and funnel) of a campaign of the key''s channels (scope read). Raises WH060, WH076, WH061 no scope read.';

-- A page of the recipients, by position after p_after: the upload's order, which never
-- changes, so that paging through a running campaign neither repeats nor misses a row.
CREATE FUNCTION whatsapp_handler.api_campaign_recipients(p_key_hash bytea, p_campaign_id bigint, p_state text DEFAULT NULL,
                                                         p_after integer DEFAULT 0, p_limit integer DEFAULT 100)
RETURNS jsonb
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
DECLARE
    v_limit integer := coalesce(p_limit, 100);
    v_page  jsonb;
BEGIN
    PERFORM _api_campaign(p_key_hash, p_campaign_id, 'read');
    IF v_limit NOT BETWEEN 1 AND 1000 OR coalesce(p_after, 0) < 0
       OR p_state NOT IN ('pending', 'queued', 'sent', 'delivered', 'read', 'failed', 'skipped') THEN
        RAISE EXCEPTION 'a page of recipients is limit 1-1000 after a position of 0 or more, state one a recipient has'
            USING ERRCODE = 'WH079',
            HINT = 'state is pending, queued, sent, delivered, read, failed or skipped; after is the next_after of the previous page.';
    END IF;
    -- One row beyond the page says whether there is a next one.
    SELECT jsonb_build_object(
               'recipients', coalesce(jsonb_agg(jsonb_build_object('position', p.position, 'phone', p.phone, 'state', p.state,
                                                                   'reason', p.reason, 'message_id', p.message_id)
                                                ORDER BY p.position) FILTER (WHERE p.n <= v_limit), '[]'),
               'next_after', CASE WHEN count(*) > v_limit THEN max(p.position) FILTER (WHERE p.n <= v_limit) END)
    INTO v_page
    FROM (SELECT r.position, r.phone, r.state, r.reason, r.message_id, row_number() OVER (ORDER BY r.position) AS n
          FROM campaign_recipients r
          WHERE r.campaign_id = p_campaign_id AND r.position > coalesce(p_after, 0) AND (p_state IS NULL OR r.state = p_state)
          ORDER BY r.position
          LIMIT v_limit + 1) p;
    RETURN v_page;
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler.api_campaign_recipients(bytea, bigint, text, integer, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION whatsapp_handler.api_campaign_recipients(bytea, bigint, text, integer, integer) TO whatsapp_handler_relay;
COMMENT ON FUNCTION whatsapp_handler.api_campaign_recipients(bytea, bigint, text, integer, integer) IS
    'GET /v1/campaigns/{id}/recipients: up to p_limit (1-1000, default 100) recipients of a campaign of the key''s channels (scope read) after position p_after, in state p_state when given; returns {recipients: [{position, phone, state, reason, message_id}], next_after: the p_after of the next page, null on the last}. Raises WH060, WH076, WH061 no scope read, WH079 a limit, position or state out of range.';

COMMIT;
