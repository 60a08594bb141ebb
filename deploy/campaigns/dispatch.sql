-- Deploy whatsapp_handler:campaigns/dispatch to pg
-- requires: campaigns/campaigns sending/send consent/consents core/roles
-- Dispatch: recipients into the outbound queue at the campaign's pace, each one's state
-- written in the transaction that queues its message, so that a crash anywhere (a worker
-- killed mid-call, PostgreSQL restarted) leaves each recipient pending or queued, never
-- both and never twice. Every rule is the send API's (_queue_business): consent, blocks,
-- the template's approval and parameters, what the provider carries. The pace is the
-- campaign's own bucket: each message is made visible to the workers at its turn (vt), at
-- most campaigns.lookahead ahead, so that the claims, which also hold the channel's and the
-- person's pace (delivery/pacing), find them no faster than per_second.
BEGIN;
SET LOCAL ROLE whatsapp_handler_owner;

-- Why a recipient was not sent to, from the refusal of the send rules. NULL: the refusal is
-- the campaign's (its template, what its provider carries), not this person's.
CREATE FUNCTION whatsapp_handler._campaign_skip_reason(p_sqlstate text, p_phone text, p_channel_id bigint)
RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
    SELECT CASE p_sqlstate
        WHEN 'WH004' THEN 'blocked'
        WHEN 'WH001' THEN 'invalid_number'
        WHEN 'WH064' THEN 'outside_window'
        WHEN 'WH068' THEN CASE WHEN EXISTS (SELECT FROM consents c JOIN users u ON u.id = c.user_id
                                            WHERE u.phone = p_phone AND c.channel_id = p_channel_id AND c.status = 'opted_out')
                               THEN 'opted_out' ELSE 'no_consent' END
        WHEN 'WH063' THEN NULL WHEN 'WH065' THEN NULL WHEN 'WH066' THEN NULL WHEN 'WH067' THEN NULL
        ELSE 'refused_' || lower(p_sqlstate)
    END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler._campaign_skip_reason(text, text, bigint) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler._campaign_skip_reason(text, text, bigint) IS
    'Internal: the reason a recipient is skipped for the send rules'' refusal p_sqlstate: blocked, invalid_number, outside_window, opted_out (the person withdrew consent on the channel) or no_consent, refused_<code> for another; NULL for a refusal of the whole campaign (WH063 the provider cannot carry it, WH065-WH067 the template). Raises nothing.';

-- One campaign's next slice. The campaign is locked (its pace and budget are its row), the
-- recipients taken in order with SKIP LOCKED; each send is its own subtransaction, so that
-- one person's refusal skips only them.
CREATE FUNCTION whatsapp_handler._campaign_dispatch(p_campaign_id bigint, p_limit integer)
RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
DECLARE
    v_c       campaigns;
    v_channel channels;
    v_step    interval;
    v_today   date := (now() AT TIME ZONE 'UTC')::date;
    v_room    integer;
    v_r       campaign_recipients;
    v_at      timestamptz;
    v_id      bigint;
    v_reason  text;
    v_done    integer := 0;
    v_state   text;
BEGIN
    SELECT * INTO v_c FROM campaigns WHERE id = p_campaign_id FOR UPDATE SKIP LOCKED;
    IF NOT FOUND OR v_c.state NOT IN ('scheduled', 'running', 'budget_exhausted') THEN
        RETURN 0;
    END IF;
    IF v_c.state = 'scheduled' THEN
        IF v_c.starts_at > now() THEN
            RETURN 0;
        END IF;
        v_c := _campaign_move(v_c.id, 'running');
    END IF;
    IF v_c.budget_day IS DISTINCT FROM v_today THEN
        UPDATE campaigns SET budget_day = v_today, budget_used = 0 WHERE id = v_c.id RETURNING * INTO v_c;
        IF v_c.state = 'budget_exhausted' THEN
            v_c := _campaign_move(v_c.id, 'running');
        END IF;
    ELSIF v_c.state = 'budget_exhausted' THEN
        RETURN 0;
    END IF;
    SELECT * INTO v_channel FROM channels WHERE id = v_c.channel_id AND active;
    IF NOT FOUND THEN
        PERFORM _campaign_move(v_c.id, 'paused', 'channel_inactive');
        RETURN 0;
    END IF;

    v_step := make_interval(secs => 1 / v_c.per_second);
    v_room := least(p_limit, coalesce(v_c.daily_budget - v_c.budget_used, p_limit),
                    floor(extract(epoch FROM now() + _setting_interval('campaigns.lookahead', interval '1 second')
                                             - greatest(v_c.tat, now())) * v_c.per_second)::integer);
    FOR v_r IN SELECT * FROM campaign_recipients
               WHERE campaign_id = v_c.id AND state = 'pending' ORDER BY position LIMIT greatest(v_room, 0)
               FOR UPDATE SKIP LOCKED LOOP
        v_at := greatest(v_c.tat, clock_timestamp());
        BEGIN
            v_id := nextval('whatsapp_handler.messages_id_seq');
            PERFORM _queue_business(v_channel, v_r.phone, _message_shape(_campaign_message(v_c, v_r.phone, v_r.variables)),
                                    v_id, now(), jsonb_build_object('campaign_id', v_c.id), v_at);
            UPDATE campaign_recipients SET state = 'queued', message_id = v_id, message_created_at = now(), updated_at = now()
            WHERE campaign_id = v_r.campaign_id AND position = v_r.position;
            v_c.tat := v_at + v_step;
            v_c.budget_used := v_c.budget_used + 1;
        EXCEPTION WHEN OTHERS THEN
            -- Only the rules' refusals are a recipient's outcome; anything else is the call's.
            IF SQLSTATE NOT LIKE 'WH%' THEN
                RAISE;
            END IF;
            v_reason := _campaign_skip_reason(SQLSTATE, v_r.phone, v_c.channel_id);
            IF v_reason IS NULL THEN
                -- The template (paused, disabled, deleted, changed) or the provider refuses
                -- everyone alike: the campaign waits for an operator, nobody is skipped.
                v_state := CASE WHEN SQLSTATE IN ('WH065', 'WH066', 'WH067') THEN
                                   'template_' || coalesce((SELECT status FROM message_templates
                                                            WHERE channel_id = v_c.channel_id AND name = v_c.template_name
                                                              AND language = v_c.template_language), 'deleted')
                                ELSE 'provider_refuses' END;
                UPDATE campaigns SET tat = v_c.tat, budget_used = v_c.budget_used WHERE id = v_c.id;
                PERFORM _campaign_move(v_c.id, 'paused', v_state);
                RETURN v_done;
            END IF;
            UPDATE campaign_recipients SET state = 'skipped', reason = v_reason, updated_at = now()
            WHERE campaign_id = v_r.campaign_id AND position = v_r.position;
        END;
        v_done := v_done + 1;
    END LOOP;
    UPDATE campaigns SET tat = v_c.tat, budget_used = v_c.budget_used WHERE id = v_c.id;
    IF NOT EXISTS (SELECT FROM campaign_recipients WHERE campaign_id = v_c.id AND state = 'pending') THEN
        PERFORM _campaign_move(v_c.id, 'completed');
    ELSIF v_c.budget_used >= v_c.daily_budget THEN
        PERFORM _campaign_move(v_c.id, 'budget_exhausted');
    END IF;
    RETURN v_done;
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler._campaign_dispatch(bigint, integer) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler._campaign_dispatch(bigint, integer) IS
    'Internal: queues the next pending recipients of one campaign (at most p_limit, its daily budget''s rest, and what its pace allows within campaigns.lookahead), each held back until its turn, recording each one queued with its message or skipped with its reason; starts a scheduled campaign at starts_at, pauses it when its template or provider refuses everyone (reason template_<status>, provider_refuses) or its channel is inactive, completes it when no recipient is pending, stops it for the day at its budget. Returns how many recipients it settled; 0 when another call holds the campaign. Raises only what is not a send rule''s refusal.';

-- The worker calls this about once a second, and again at once while it returns its limit.
CREATE FUNCTION whatsapp_handler.worker_campaigns(p_limit integer DEFAULT 50)
RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
DECLARE
    v_id   bigint;
    v_done integer := 0;
BEGIN
    -- At most 60: a subtransaction per recipient, and PostgreSQL keeps 64 of a transaction's
    -- subtransactions cheap to check; more would slow every other session's snapshots.
    IF p_limit IS NULL OR p_limit NOT BETWEEN 1 AND 60 THEN
        RAISE EXCEPTION 'a dispatch takes 1 to 60 recipients' USING ERRCODE = 'WH013',
            HINT = 'Call it again while it returns its limit.';
    END IF;
    FOR v_id IN SELECT id FROM campaigns WHERE state IN ('scheduled', 'running', 'budget_exhausted') ORDER BY tat, id LOOP
        EXIT WHEN v_done >= p_limit;
        v_done := v_done + _campaign_dispatch(v_id, p_limit - v_done);
    END LOOP;
    RETURN v_done;
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler.worker_campaigns(integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION whatsapp_handler.worker_campaigns(integer) TO whatsapp_handler_worker;
COMMENT ON FUNCTION whatsapp_handler.worker_campaigns(integer) IS
    'The worker''s campaign dispatch: the next recipients of the campaigns due (scheduled past starts_at, running, budget_exhausted into a new day), at most p_limit (1-60) in all, by _campaign_dispatch; returns how many were settled (queued or skipped). Several workers may call it at once: each campaign is dispatched by one call at a time. Raises WH013 for a limit outside 1-60.';

COMMIT;
