-- Deploy whatsapp_handler:campaigns/campaigns to pg
-- requires: core/channels core/e164 templates/templates sending/api_keys messages/messages outbox/event_envelope jobs/settings sending/send
-- Campaigns: one approved template to an audience, at the campaign's own pace. A campaign
-- and its recipients are rows; what moves them is one rule each: _campaign_move (the states
-- a campaign may go through), campaign_upload (which rows become recipients, and why the
-- others do not), campaigns/dispatch (recipients into the outbound queue, exactly once).
--   campaign:  draft → scheduled → running ⇄ paused → completed; cancelled from any state
--              before completed; running ⇄ budget_exhausted (the day's budget spent); a
--              campaign paused before its start resumes to scheduled
--   recipient: pending → queued → sent → delivered → read, or failed; or skipped with a reason
BEGIN;
SET LOCAL ROLE whatsapp_handler_owner;

CREATE TABLE whatsapp_handler.campaigns (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name              text NOT NULL CONSTRAINT campaigns_name_shape CHECK (char_length(name) BETWEEN 1 AND 200),
    channel_id        bigint NOT NULL REFERENCES whatsapp_handler.channels (id),
    template_name     text NOT NULL,
    template_language text NOT NULL,
    category          text NOT NULL,
    -- Meta's components other than the body (a header's image, a button's parameter), the
    -- same for everyone; each recipient's variables fill the body.
    components        jsonb NOT NULL DEFAULT '[]' CONSTRAINT campaigns_components_array CHECK (jsonb_typeof(components) = 'array'),
    body_parameters   integer NOT NULL,
    per_second        numeric NOT NULL CONSTRAINT campaigns_per_second_range CHECK (per_second > 0 AND per_second <= 1000),
    daily_budget      integer CONSTRAINT campaigns_daily_budget_positive CHECK (daily_budget > 0),
    starts_at         timestamptz,
    state             text NOT NULL DEFAULT 'draft'
                      CONSTRAINT campaigns_state_known CHECK (state IN ('draft', 'scheduled', 'running', 'paused',
                                                                        'budget_exhausted', 'completed', 'cancelled')),
    state_reason      text,
    state_changed_at  timestamptz NOT NULL DEFAULT now(),
    -- The pace: when the next recipient may be made visible to the workers (campaigns/dispatch).
    tat               timestamptz NOT NULL DEFAULT '-infinity',
    budget_day        date,
    budget_used       integer NOT NULL DEFAULT 0,
    api_key_id        bigint REFERENCES whatsapp_handler.api_keys (id) ON DELETE SET NULL,
    created_at        timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT campaigns_template_exists FOREIGN KEY (channel_id, template_name, template_language)
        REFERENCES whatsapp_handler.message_templates (channel_id, name, language)
);
COMMENT ON TABLE whatsapp_handler.campaigns IS 'A template sent to a list of recipients on one channel at the campaign''s own pace (per_second, below the channel''s), within an optional daily budget (messages per UTC day). State and its reason move only through _campaign_move; docs/campaigns.md.';
CREATE INDEX campaigns_running_idx ON whatsapp_handler.campaigns (state) WHERE state IN ('scheduled', 'running', 'budget_exhausted');

CREATE TABLE whatsapp_handler.campaign_recipients (
    campaign_id        bigint NOT NULL REFERENCES whatsapp_handler.campaigns (id) ON DELETE CASCADE,
    position           integer NOT NULL,
    phone              text,
    variables          jsonb NOT NULL DEFAULT '[]' CONSTRAINT campaign_recipients_variables_array CHECK (jsonb_typeof(variables) = 'array'),
    state              text NOT NULL DEFAULT 'pending'
                       CONSTRAINT campaign_recipients_state_known
                       CHECK (state IN ('pending', 'queued', 'sent', 'delivered', 'read', 'failed', 'skipped')),
    reason             text CONSTRAINT campaign_recipients_reason_shape CHECK (reason ~ '^[a-z][a-z0-9_]{0,39}$'),
    message_id         bigint,
    message_created_at timestamptz,
    updated_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (campaign_id, position),
    CONSTRAINT campaign_recipients_skipped_has_reason CHECK ((state = 'skipped') <= (reason IS NOT NULL))
);
COMMENT ON TABLE whatsapp_handler.campaign_recipients IS 'One row per row of a campaign''s audience, in upload order (position from 1): its phone and body variables, its state (pending, queued, sent, delivered, read, failed, skipped) and reason (why skipped or failed), and the message it became. Duplicates and invalid rows are kept as skipped, never dropped.';
CREATE UNIQUE INDEX campaign_recipients_phone_idx ON whatsapp_handler.campaign_recipients (campaign_id, phone)
    WHERE state <> 'skipped';
CREATE INDEX campaign_recipients_pending_idx ON whatsapp_handler.campaign_recipients (campaign_id, position) WHERE state = 'pending';
CREATE INDEX campaign_recipients_message_idx ON whatsapp_handler.campaign_recipients (message_id) WHERE message_id IS NOT NULL;

INSERT INTO whatsapp_handler.settings (key, value, description) VALUES
    ('campaigns.lookahead', '"10 seconds"',
     'How far ahead of its pace a campaign''s recipients are queued (each held back until its turn): enough for a dispatch call to miss a beat, little enough that a pause or a cancel takes effect soon (1 second to 10 minutes).'),
    ('campaigns.max_recipients', '200000',
     'The most recipients one campaign may hold (1-10000000).');

CREATE FUNCTION whatsapp_handler._campaign(p_campaign_id bigint)
RETURNS whatsapp_handler.campaigns
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
DECLARE
    v_c campaigns;
BEGIN
    SELECT * INTO v_c FROM campaigns WHERE id = p_campaign_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'unknown campaign %', coalesce(p_campaign_id::text, 'NULL') USING ERRCODE = 'WH076',
            HINT = 'Use the id campaign_create returned, on a channel your key may send on.';
    END IF;
    RETURN v_c;
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler._campaign(bigint) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler._campaign(bigint) IS 'Internal: the campaign row. Raises WH076 unknown campaign.';

CREATE FUNCTION whatsapp_handler._campaign_refuse(p_c whatsapp_handler.campaigns, p_action text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
BEGIN
    RAISE EXCEPTION 'campaign % is %: it cannot %', (p_c).id, (p_c).state, p_action USING ERRCODE = 'WH077',
        HINT = CASE (p_c).state
            WHEN 'cancelled' THEN 'A cancelled campaign stays cancelled: create a new one.'
            WHEN 'completed' THEN 'A completed campaign sent everything it had: create a new one.'
            WHEN 'draft' THEN 'Upload recipients, then start it.'
            ELSE 'Recipients are added before the start. Draft or scheduled: start; running: pause, cancel; paused: resume, cancel.' END;
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler._campaign_refuse(whatsapp_handler.campaigns, text) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler._campaign_refuse(whatsapp_handler.campaigns, text) IS
    'Internal: refuses an action the campaign''s state does not allow, naming the state. Raises WH077 always.';

-- Where a campaign goes when it starts or resumes: scheduled until its start, running from then.
CREATE FUNCTION whatsapp_handler._campaign_go_state(p_starts_at timestamptz)
RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT CASE WHEN p_starts_at OPERATOR(pg_catalog.>) pg_catalog.now() THEN 'scheduled' ELSE 'running' END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler._campaign_go_state(timestamptz) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler._campaign_go_state(timestamptz) IS
    'Internal: the state a campaign starting or resuming goes to: scheduled while its starts_at is ahead, else running. Raises nothing.';

-- The one rule of a campaign's states: which action moves which state where. A refusal
-- names the state, so that the caller knows what to do instead.
CREATE FUNCTION whatsapp_handler._campaign_move(p_campaign_id bigint, p_to text, p_reason text DEFAULT NULL)
RETURNS whatsapp_handler.campaigns
LANGUAGE plpgsql
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
DECLARE
    v_c    campaigns;
    v_from text[] := CASE p_to
        WHEN 'scheduled' THEN ARRAY['draft', 'paused']
        WHEN 'running' THEN ARRAY['draft', 'scheduled', 'paused', 'budget_exhausted']
        -- Paused again for another reason: the latest cause is the one to clear.
        WHEN 'paused' THEN ARRAY['scheduled', 'running', 'budget_exhausted', 'paused']
        WHEN 'budget_exhausted' THEN ARRAY['running']
        WHEN 'completed' THEN ARRAY['running']
        WHEN 'cancelled' THEN ARRAY['draft', 'scheduled', 'running', 'paused', 'budget_exhausted']
    END;
BEGIN
    v_c := _campaign(p_campaign_id);
    SELECT * INTO v_c FROM campaigns WHERE id = v_c.id FOR UPDATE;
    IF v_c.state = p_to AND p_reason IS NOT DISTINCT FROM v_c.state_reason THEN
        RETURN v_c;
    END IF;
    IF v_from IS NULL OR NOT v_c.state = ANY (v_from) THEN
        PERFORM _campaign_refuse(v_c, 'become ' || coalesce(p_to, 'NULL'));
    END IF;
    UPDATE campaigns SET state = p_to, state_reason = p_reason, state_changed_at = now(),
                         tat = CASE WHEN p_to = 'running' THEN '-infinity' ELSE tat END
    WHERE id = v_c.id RETURNING * INTO v_c;
    IF p_to = 'cancelled' THEN
        UPDATE campaign_recipients SET state = 'skipped', reason = 'cancelled', updated_at = now()
        WHERE campaign_id = v_c.id AND state = 'pending';
    END IF;
    PERFORM _emit_channel_event('campaign.' || p_to, v_c.channel_id,
                                jsonb_strip_nulls(jsonb_build_object('campaign_id', v_c.id, 'name', v_c.name, 'reason', p_reason)));
    RETURN v_c;
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler._campaign_move(bigint, text, text) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler._campaign_move(bigint, text, text) IS
    'Internal: moves a campaign to state p_to with reason p_reason when its state allows (draft → scheduled; draft, scheduled, paused, budget_exhausted → running; scheduled, running, budget_exhausted → paused; running → budget_exhausted, completed; any but completed and cancelled → cancelled, its pending recipients skipped as cancelled) and emits campaign.<state>; the same state and reason again changes nothing. Raises WH076 unknown campaign, WH077 a move its state does not allow.';

-- A body's parameters from a recipient's variables, the campaign's other components beside.
CREATE FUNCTION whatsapp_handler._campaign_message(p_c whatsapp_handler.campaigns, p_phone text, p_variables jsonb)
RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
BEGIN
    -- plpgsql, not sql: dispatch calls it inside each recipient's subtransaction, which would
    -- throw a sql function's plan away every time (bench/RESULTS.md, Campaigns).
    RETURN jsonb_build_object('to', p_phone, 'type', 'template', 'template', jsonb_build_object(
        'name', p_c.template_name, 'language', jsonb_build_object('code', p_c.template_language),
        'components', p_c.components || CASE WHEN jsonb_array_length(p_variables) = 0 THEN '[]'::jsonb
            ELSE jsonb_build_array(jsonb_build_object('type', 'body', 'parameters',
                 (SELECT jsonb_agg(jsonb_build_object('type', 'text', 'text', v) ORDER BY n)
                  FROM jsonb_array_elements_text(p_variables) WITH ORDINALITY AS t (v, n)))) END));
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler._campaign_message(whatsapp_handler.campaigns, text, jsonb) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler._campaign_message(whatsapp_handler.campaigns, text, jsonb) IS
    'Internal: the Meta message object a recipient of a campaign is sent: its template and language, the campaign''s components and a body with one text parameter per variable. Raises nothing.';

CREATE FUNCTION whatsapp_handler.campaign_create(p_request jsonb, p_api_key_id bigint DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
DECLARE
    v_channel  channels;
    v_template message_templates;
    v_rate     numeric;
    v_c        campaigns;
BEGIN
    IF jsonb_typeof(p_request) IS DISTINCT FROM 'object'
       OR NOT p_request ?& ARRAY['name', 'channel_id', 'template']
       OR EXISTS (SELECT FROM jsonb_object_keys(p_request) k
                  WHERE k NOT IN ('name', 'channel_id', 'template', 'components', 'per_second', 'daily_budget', 'starts_at'))
       OR jsonb_typeof(p_request -> 'name') <> 'string' OR jsonb_typeof(p_request -> 'channel_id') <> 'number'
       OR jsonb_typeof(p_request -> 'template') <> 'object'
       OR jsonb_typeof(p_request #> '{template,name}') IS DISTINCT FROM 'string'
       OR jsonb_typeof(p_request #> '{template,language}') IS DISTINCT FROM 'string'
       OR coalesce(jsonb_typeof(p_request -> 'components'), 'array') <> 'array'
       OR coalesce(jsonb_typeof(p_request -> 'per_second'), 'number') <> 'number'
       OR coalesce(jsonb_typeof(p_request -> 'daily_budget'), 'number') <> 'number'
       OR coalesce(jsonb_typeof(p_request -> 'starts_at'), 'string') <> 'string' THEN
        RAISE EXCEPTION 'malformed campaign' USING ERRCODE = 'WH079',
            HINT = 'Pass {"name", "channel_id", "template": {"name", "language"}} and optionally "components" (header, buttons), "per_second", "daily_budget", "starts_at" (docs/campaigns.md).';
    END IF;
    SELECT * INTO v_channel FROM channels WHERE id = (p_request ->> 'channel_id')::numeric AND active;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'unknown or inactive channel %', p_request ->> 'channel_id' USING ERRCODE = 'WH003',
            HINT = 'Pass the id of an active channel.';
    END IF;
    SELECT * INTO v_template FROM message_templates
    WHERE channel_id = v_channel.id AND name = p_request #>> '{template,name}' AND language = p_request #>> '{template,language}';
    IF NOT FOUND THEN
        RAISE EXCEPTION 'unknown template % (%) on channel %', p_request #>> '{template,name}', p_request #>> '{template,language}', v_channel.id
            USING ERRCODE = 'WH065', HINT = 'Sync the channel''s templates (whatsapp-handler templates sync) or check the name and language.';
    END IF;
    v_rate := coalesce((p_request ->> 'per_second')::numeric, 10);
    IF v_rate <= 0 OR v_rate > _setting_integer('pacing.channel.per_second', 1, 100000) OR v_rate > 1000
       OR (p_request ->> 'daily_budget')::numeric <= 0 OR (p_request ->> 'daily_budget')::numeric > 2147483647
       OR (p_request ->> 'daily_budget')::numeric <> trunc((p_request ->> 'daily_budget')::numeric)
       OR char_length(p_request ->> 'name') NOT BETWEEN 1 AND 200 THEN
        RAISE EXCEPTION 'a campaign''s per_second is above 0 and at most its channel''s cap, its daily_budget a positive integer, its name 1-200 characters'
            USING ERRCODE = 'WH079', HINT = 'The channel''s cap is setting pacing.channel.per_second; a campaign paces itself below it.';
    END IF;
    INSERT INTO campaigns (name, channel_id, template_name, template_language, category, components, body_parameters,
                           per_second, daily_budget, starts_at, api_key_id)
    VALUES (p_request ->> 'name', v_channel.id, v_template.name, v_template.language, v_template.category,
            coalesce(p_request -> 'components', '[]'), v_template.body_parameters, v_rate,
            (p_request ->> 'daily_budget')::integer, _campaign_time(p_request ->> 'starts_at'), p_api_key_id)
    RETURNING * INTO v_c;
    -- The shape of what every recipient will be sent, checked once now (the template's
    -- approval is checked when it starts and at each dispatch).
    PERFORM _message_shape(_campaign_message(v_c, '+10000000000',
                           (SELECT coalesce(jsonb_agg('x'::text), '[]') FROM generate_series(1, v_c.body_parameters))));
    PERFORM _emit_channel_event('campaign.created', v_c.channel_id, jsonb_build_object('campaign_id', v_c.id, 'name', v_c.name));
    RETURN v_c.id;
END
$$;

CREATE FUNCTION whatsapp_handler._campaign_time(p_text text)
RETURNS timestamptz
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
BEGIN
    RETURN p_text::timestamptz;
EXCEPTION WHEN invalid_datetime_format OR datetime_field_overflow OR invalid_parameter_value THEN
    RAISE EXCEPTION 'starts_at is not a time' USING ERRCODE = 'WH079',
        HINT = 'Give an ISO 8601 time with its zone, e.g. 2026-12-24T09:00:00Z.';
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler._campaign_time(text) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler._campaign_time(text) IS 'Internal: a campaign''s starts_at as a time (NULL stays NULL). Raises WH079 for text that is not one.';

REVOKE ALL ON FUNCTION whatsapp_handler.campaign_create(jsonb, bigint) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler.campaign_create(jsonb, bigint) IS
    'Creates a campaign in state draft (p_request: name, channel_id, template {name, language}, and optionally components other than the body, per_second (default 10, at most the channel''s cap), daily_budget, starts_at) for the DBA, the CLI and api_campaign_create; returns its id and emits campaign.created. Raises WH079 malformed, WH003 unknown channel, WH065 unknown template, WH062 components of the wrong shape.';

-- What is wrong with one uploaded row, if anything: the one check of a recipient row. A SQL
-- expression without a search_path, so that it is inlined into the upload's statements (a
-- call with its own search_path costs more than the check, on 100,000 rows).
CREATE FUNCTION whatsapp_handler._campaign_row_problem(p_row jsonb, p_body_parameters integer)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT CASE
        WHEN coalesce(pg_catalog.jsonb_typeof(p_row), '') OPERATOR(pg_catalog.<>) 'object'
             OR EXISTS (SELECT FROM pg_catalog.jsonb_object_keys(p_row) k
                        WHERE k OPERATOR(pg_catalog.<>) 'phone' AND k OPERATOR(pg_catalog.<>) 'variables')
            THEN 'malformed'
        WHEN coalesce(pg_catalog.jsonb_typeof(p_row OPERATOR(pg_catalog.->) 'phone'), '') OPERATOR(pg_catalog.<>) 'string'
             OR NOT whatsapp_handler._is_e164(p_row OPERATOR(pg_catalog.->>) 'phone')
            THEN 'invalid_number'
        WHEN coalesce(pg_catalog.jsonb_typeof(p_row OPERATOR(pg_catalog.->) 'variables'), 'array') OPERATOR(pg_catalog.<>) 'array'
             OR pg_catalog.jsonb_array_length(coalesce(p_row OPERATOR(pg_catalog.->) 'variables', '[]'))
                OPERATOR(pg_catalog.<>) p_body_parameters
             OR EXISTS (SELECT FROM pg_catalog.jsonb_array_elements(coalesce(p_row OPERATOR(pg_catalog.->) 'variables', '[]')) v
                        WHERE pg_catalog.jsonb_typeof(v) OPERATOR(pg_catalog.<>) 'string'
                           OR pg_catalog.char_length(v OPERATOR(pg_catalog.#>>) '{}') OPERATOR(pg_catalog.<) 1
                           OR pg_catalog.char_length(v OPERATOR(pg_catalog.#>>) '{}') OPERATOR(pg_catalog.>) 1024)
            THEN 'missing_variables'
    END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler._campaign_row_problem(jsonb, integer) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler._campaign_row_problem(jsonb, integer) IS
    'Internal: NULL for a good recipient row ({"phone": E.164, "variables": p_body_parameters strings of 1-1024 characters}), else malformed, invalid_number or missing_variables. Raises nothing.';

-- Which rows become recipients. Every row is answered: accepted, a duplicate of an earlier
-- phone (kept, skipped), or invalid. An invalid row refuses the whole upload, naming it,
-- unless the caller asked to keep such rows as skipped: nothing is ever half-stored.
CREATE FUNCTION whatsapp_handler.campaign_upload(p_campaign_id bigint, p_rows jsonb, p_skip_invalid boolean DEFAULT false)
RETURNS jsonb
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
DECLARE
    v_c       campaigns;
    v_start   integer;
    v_bad     record;
    v_result  jsonb;
BEGIN
    v_c := _campaign(p_campaign_id);
    -- Locked: two uploads at once number their rows one after the other.
    SELECT * INTO v_c FROM campaigns WHERE id = v_c.id FOR UPDATE;
    IF v_c.state NOT IN ('draft', 'scheduled') THEN
        PERFORM _campaign_refuse(v_c, 'take more recipients');
    END IF;
    IF jsonb_typeof(p_rows) IS DISTINCT FROM 'array' OR jsonb_array_length(p_rows) = 0 THEN
        RAISE EXCEPTION 'recipients are a non-empty array' USING ERRCODE = 'WH078',
            HINT = 'Pass [{"phone": "+447700900123", "variables": ["Ana", "4711"]}, ...] (or upload a CSV: phone,var1,var2,...).';
    END IF;
    SELECT coalesce(max(position), 0) INTO v_start FROM campaign_recipients WHERE campaign_id = v_c.id;
    IF v_start + jsonb_array_length(p_rows) > _setting_integer('campaigns.max_recipients', 1, 10000000) THEN
        RAISE EXCEPTION 'campaign % would hold more than % recipients', v_c.id, _setting_integer('campaigns.max_recipients', 1, 10000000)
            USING ERRCODE = 'WH078', HINT = 'Split the audience over several campaigns, or raise setting campaigns.max_recipients.';
    END IF;

    -- Each row checked once here, once more as it is stored: no table in between.
    WITH checked AS MATERIALIZED (
        SELECT e.n, _campaign_row_problem(e.r, v_c.body_parameters) AS problem
        FROM jsonb_array_elements(p_rows) WITH ORDINALITY AS e (r, n)
    )
    SELECT c.n, c.problem, count(*) OVER () AS total INTO v_bad
    FROM checked c WHERE c.problem IS NOT NULL ORDER BY c.n LIMIT 1;
    IF FOUND AND (NOT p_skip_invalid OR v_bad.problem = 'malformed') THEN
        RAISE EXCEPTION 'row % of the upload is %: % invalid rows, nothing stored', v_bad.n,
                        CASE v_bad.problem WHEN 'invalid_number' THEN 'not a phone in E.164'
                                           WHEN 'missing_variables' THEN format('not %s variables of 1-1024 characters', v_c.body_parameters)
                                           ELSE 'not {"phone", "variables"}' END, v_bad.total
            USING ERRCODE = 'WH078', DETAIL = format('row=%s problem=%s', v_bad.n, v_bad.problem),
                  HINT = format('Rows count from 1 (a CSV''s header is not a row). The template %s takes %s body variables. Fix the rows, or upload with skip_invalid to keep them as skipped.',
                                v_c.template_name, v_c.body_parameters);
    END IF;

    -- The first valid row of each phone is the recipient; later ones, in this upload or
    -- against an earlier one, are kept as skipped duplicates.
    WITH rows AS (
        SELECT e.n, e.r ->> 'phone' AS phone, e.r -> 'variables' AS variables,
               _campaign_row_problem(e.r, v_c.body_parameters) AS problem
        FROM jsonb_array_elements(p_rows) WITH ORDINALITY AS e (r, n)
    ), stored AS (
        INSERT INTO campaign_recipients (campaign_id, position, phone, variables, state, reason)
        SELECT v_c.id, v_start + r.n, CASE WHEN r.problem = 'invalid_number' THEN NULL ELSE r.phone END,
               CASE WHEN r.problem IS NULL THEN coalesce(r.variables, '[]') ELSE '[]' END,
               CASE WHEN r.problem IS NOT NULL OR r.dup THEN 'skipped' ELSE 'pending' END,
               CASE WHEN r.problem IS NOT NULL THEN r.problem WHEN r.dup THEN 'duplicate' END
        FROM (SELECT w.*, w.problem IS NULL AND (
                         row_number() OVER (PARTITION BY w.phone, w.problem IS NULL ORDER BY w.n) > 1
                         OR EXISTS (SELECT FROM campaign_recipients x
                                    WHERE x.campaign_id = v_c.id AND x.phone = w.phone AND x.state <> 'skipped')) AS dup
              FROM rows w) r
        ORDER BY r.n
        RETURNING state, reason
    )
    SELECT jsonb_build_object('rows', count(*), 'accepted', count(*) FILTER (WHERE state = 'pending'),
                              'duplicates', count(*) FILTER (WHERE reason = 'duplicate'),
                              'invalid', count(*) FILTER (WHERE reason IN ('invalid_number', 'missing_variables')),
                              'first_position', v_start + 1)
    INTO v_result FROM stored;
    -- The first dispatch calls read the pending recipients in order: with statistics of
    -- the new rows, through the pending index, not a sort of the whole list.
    ANALYZE whatsapp_handler.campaign_recipients;
    RETURN v_result;
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler.campaign_upload(bigint, jsonb, boolean) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler.campaign_upload(bigint, jsonb, boolean) IS
    'Adds recipients to a draft or scheduled campaign (p_rows: [{"phone", "variables": [one string per body parameter]}]), in order after the earlier ones; a phone already listed is kept as skipped (duplicate). An invalid row (not E.164, wrong variables) refuses the whole upload naming the first one (DETAIL row=N problem=...), or with p_skip_invalid is kept as skipped (invalid_number, missing_variables); a malformed row always refuses. Returns {rows, accepted, duplicates, invalid, first_position}. Raises WH076 unknown campaign, WH077 campaign past scheduled, WH078 bad rows or too many.';

-- The audience as a query over the people the channel knows.
CREATE FUNCTION whatsapp_handler.campaign_audience(p_campaign_id bigint, p_filter jsonb DEFAULT '{}')
RETURNS jsonb
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
DECLARE
    v_c    campaigns;
    v_rows jsonb;
BEGIN
    v_c := _campaign(p_campaign_id);
    IF jsonb_typeof(p_filter) IS DISTINCT FROM 'object'
       OR EXISTS (SELECT FROM jsonb_object_keys(p_filter) k WHERE k NOT IN ('active_within', 'language', 'preferences', 'variables'))
       OR coalesce(jsonb_typeof(p_filter -> 'preferences'), 'object') <> 'object'
       OR coalesce(jsonb_typeof(p_filter -> 'language'), 'string') <> 'string'
       OR coalesce(jsonb_typeof(p_filter -> 'active_within'), 'string') <> 'string' THEN
        RAISE EXCEPTION 'malformed audience filter' USING ERRCODE = 'WH079',
            HINT = 'Pass {"active_within": "30 days", "language": "pt-BR", "preferences": {...}, "variables": [...]}: each optional.';
    END IF;
    -- Everyone the channel knows (an open conversation), not erased nor blocked, matching
    -- every filter given; the rows go through campaign_upload like any upload.
    SELECT coalesce(jsonb_agg(jsonb_build_object('phone', u.phone, 'variables', coalesce(p_filter -> 'variables', '[]')) ORDER BY u.id), '[]')
    INTO v_rows
    FROM users u
    JOIN conversations c ON c.user_id = u.id AND c.channel_id = v_c.channel_id AND c.state <> 'closed'
    LEFT JOIN user_preferences p ON p.user_id = u.id
    WHERE u.erased_at IS NULL AND u.blocked_at IS NULL AND u.phone IS NOT NULL
      AND (p_filter -> 'active_within' IS NULL
           OR u.last_active_at >= now() - _campaign_interval(p_filter ->> 'active_within'))
      AND (p_filter -> 'language' IS NULL OR p.language = p_filter ->> 'language')
      AND (p_filter -> 'preferences' IS NULL
           OR coalesce(to_jsonb(p) - 'user_id' - 'updated_at', '{}') @> (p_filter -> 'preferences'));
    IF jsonb_array_length(v_rows) = 0 THEN
        RAISE EXCEPTION 'no one the channel knows matches the filter' USING ERRCODE = 'WH078',
            HINT = 'Widen the filter; the channel knows the people with an open conversation on it.';
    END IF;
    RETURN campaign_upload(p_campaign_id, v_rows);
END
$$;

CREATE FUNCTION whatsapp_handler._campaign_interval(p_text text)
RETURNS interval
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
BEGIN
    RETURN p_text::interval;
EXCEPTION WHEN invalid_datetime_format OR datetime_field_overflow OR interval_field_overflow OR invalid_parameter_value THEN
    RAISE EXCEPTION 'active_within is not an interval' USING ERRCODE = 'WH079', HINT = 'Give an interval such as "30 days".';
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler._campaign_interval(text) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler._campaign_interval(text) IS 'Internal: an audience filter''s interval. Raises WH079 for text that is not one.';
REVOKE ALL ON FUNCTION whatsapp_handler.campaign_audience(bigint, jsonb) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler.campaign_audience(bigint, jsonb) IS
    'Adds as recipients the people the campaign''s channel knows (an open conversation, not erased, not blocked) who match p_filter: active_within (an interval since their last activity), language and preferences (their preferences contain these), with the same variables for everyone; through campaign_upload, whose result it returns. Raises WH076, WH077, WH078 (no one matches), WH079 malformed filter.';

-- start, pause, resume, cancel: the actions of the API and the CLI, on the one rule above.
CREATE FUNCTION whatsapp_handler.campaign_control(p_campaign_id bigint, p_action text)
RETURNS jsonb
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
DECLARE
    v_c campaigns;
BEGIN
    v_c := _campaign(p_campaign_id);
    IF p_action = 'start' THEN
        IF v_c.state NOT IN ('draft', 'scheduled') THEN
            PERFORM _campaign_refuse(v_c, 'start');
        END IF;
        IF NOT EXISTS (SELECT FROM campaign_recipients WHERE campaign_id = v_c.id AND state = 'pending') THEN
            RAISE EXCEPTION 'campaign % has no recipient to send to', v_c.id USING ERRCODE = 'WH077',
                HINT = 'Upload recipients first (every one so far was skipped, or none was added).';
        END IF;
        PERFORM _template_for_send(v_c.channel_id, _campaign_message(v_c, '+10000000000',
                    (SELECT coalesce(jsonb_agg('x'::text), '[]') FROM generate_series(1, v_c.body_parameters))) -> 'template');
        v_c := _campaign_move(v_c.id, _campaign_go_state(v_c.starts_at));
    ELSIF p_action = 'pause' THEN
        v_c := _campaign_move(v_c.id, 'paused', 'operator');
    ELSIF p_action = 'resume' THEN
        IF v_c.state <> 'paused' THEN
            PERFORM _campaign_refuse(v_c, 'resume');
        END IF;
        v_c := _campaign_move(v_c.id, _campaign_go_state(v_c.starts_at));
    ELSIF p_action = 'cancel' THEN
        v_c := _campaign_move(v_c.id, 'cancelled', 'operator');
    ELSE
        RAISE EXCEPTION 'unknown action %', coalesce(p_action, 'NULL') USING ERRCODE = 'WH079',
            HINT = 'The actions are start, pause, resume, cancel.';
    END IF;
    RETURN jsonb_build_object('id', v_c.id, 'state', v_c.state, 'reason', v_c.state_reason);
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler.campaign_control(bigint, text) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler.campaign_control(bigint, text) IS
    'start (draft or scheduled, with a pending recipient and its template approved: running, or scheduled until starts_at), pause, resume (a paused campaign only: scheduled again before its starts_at, else running), cancel; returns {id, state, reason}. Raises WH076 unknown campaign, WH077 the state does not allow it (the message names the state), WH065/WH066/WH067 the template cannot be sent, WH079 unknown action.';

-- What became of a campaign: its state and the funnel of its recipients.
CREATE FUNCTION whatsapp_handler.campaign_results(p_campaign_id bigint)
RETURNS jsonb
LANGUAGE plpgsql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
DECLARE
    v_c campaigns;
BEGIN
    v_c := _campaign(p_campaign_id);
    RETURN jsonb_build_object(
        'id', v_c.id, 'name', v_c.name, 'channel_id', v_c.channel_id, 'state', v_c.state, 'reason', v_c.state_reason,
        'state_changed_at', v_c.state_changed_at, 'template', jsonb_build_object('name', v_c.template_name, 'language', v_c.template_language),
        'category', v_c.category, 'per_second', v_c.per_second, 'daily_budget', v_c.daily_budget, 'starts_at', v_c.starts_at,
        'recipients', (SELECT count(*) FROM campaign_recipients WHERE campaign_id = v_c.id),
        'states', (SELECT coalesce(jsonb_object_agg(state, n), '{}') FROM (
                       SELECT state, count(*) AS n FROM campaign_recipients WHERE campaign_id = v_c.id GROUP BY state) s),
        'reasons', (SELECT coalesce(jsonb_object_agg(state || ':' || reason, n), '{}') FROM (
                       SELECT state, reason, count(*) AS n FROM campaign_recipients
                       WHERE campaign_id = v_c.id AND reason IS NOT NULL GROUP BY state, reason) s));
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler.campaign_results(bigint) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler.campaign_results(bigint) IS
    'A campaign''s state and funnel: {id, name, channel_id, state, reason, template, category, per_second, daily_budget, starts_at, recipients, states: {state: n}, reasons: {"skipped:no_consent": n, "failed:undeliverable": n, ...}}. Raises WH076 unknown campaign.';

COMMIT;
