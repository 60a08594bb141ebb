-- Deploy whatsapp_handler:campaigns/quality to pg
-- requires: campaigns/campaigns templates/status_updates core/channels outbox/event_envelope
-- Meta's word on a business number's standing (phone_number_quality_update: FLAGGED when its
-- quality rating fell to low, DOWNGRADE when its messaging limit was lowered, UNFLAGGED,
-- UPGRADE, ...), kept per channel. A number flagged or downgraded is one that recipients
-- block or report: its campaigns pause by themselves, before more sends make it worse; an
-- operator resumes them once the cause is understood.
BEGIN;
SET LOCAL ROLE whatsapp_handler_owner;

CREATE TABLE whatsapp_handler.channel_quality (
    channel_id    bigint PRIMARY KEY REFERENCES whatsapp_handler.channels (id) ON DELETE CASCADE,
    event         text NOT NULL CONSTRAINT channel_quality_event_shape CHECK (event ~ '^[A-Z][A-Z_]{0,39}$'),
    current_limit text CONSTRAINT channel_quality_current_limit_shape CHECK (current_limit ~ '^[A-Z0-9_]{1,40}$'),
    changed_at    timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE whatsapp_handler.channel_quality IS 'The latest phone_number_quality_update Meta sent about each Meta channel''s number: its event (FLAGGED, UNFLAGGED, DOWNGRADE, UPGRADE, ONBOARDING, ...) and messaging limit (current_limit, e.g. TIER_1K). FLAGGED and DOWNGRADE pause the channel''s campaigns (campaigns/quality).';

CREATE FUNCTION whatsapp_handler._meta_quality_update(p_account_id text, p_value jsonb)
RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
DECLARE
    v_event    text := upper(p_value ->> 'event');
    v_limit    text := upper(coalesce(p_value ->> 'current_limit', p_value ->> 'max_daily_conversations_per_business'));
    v_channel  bigint;
    v_previous text;
    v_campaign bigint;
    v_found    integer := 0;
BEGIN
    IF v_event IS NULL OR v_event !~ '^[A-Z][A-Z_]{0,39}$' OR v_limit !~ '^[A-Z0-9_]{1,40}$' THEN
        RETURN 0;
    END IF;
    -- The number of a channel of this account (when the account is known for it: a webhook
    -- of one account never moves another account's number).
    FOR v_channel IN
        SELECT c.id FROM channels c LEFT JOIN meta_channel_accounts a ON a.channel_id = c.id
        WHERE c.provider = 'meta' AND c.phone = '+' || regexp_replace(coalesce(p_value ->> 'display_phone_number', ''), '[^0-9]', '', 'g')
          AND (a.account_id IS NULL OR a.account_id = p_account_id)
        ORDER BY c.id
    LOOP
        SELECT event INTO v_previous FROM channel_quality WHERE channel_id = v_channel FOR UPDATE;
        INSERT INTO channel_quality AS q (channel_id, event, current_limit) VALUES (v_channel, v_event, v_limit)
        ON CONFLICT (channel_id) DO UPDATE SET event = EXCLUDED.event, current_limit = EXCLUDED.current_limit, changed_at = now();
        PERFORM _emit_channel_event('channel.quality_changed', v_channel,
                                    jsonb_strip_nulls(jsonb_build_object('event', v_event, 'current_limit', v_limit,
                                                                         'previous_event', v_previous)));
        IF v_event IN ('FLAGGED', 'DOWNGRADE') THEN
            FOR v_campaign IN SELECT id FROM campaigns
                              WHERE channel_id = v_channel AND state IN ('scheduled', 'running', 'budget_exhausted') ORDER BY id LOOP
                PERFORM _campaign_move(v_campaign, 'paused', 'quality_' || lower(v_event));
            END LOOP;
        END IF;
        v_found := v_found + 1;
    END LOOP;
    RETURN v_found;
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler._meta_quality_update(text, jsonb) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler._meta_quality_update(text, jsonb) IS
    'Internal: applies a phone_number_quality_update of account p_account_id (p_value: display_phone_number, event, current_limit) to the Meta channels with that number (of that account when known): channel_quality, channel.quality_changed, and FLAGGED or DOWNGRADE pauses their scheduled, running and budget-stopped campaigns (reason quality_flagged, quality_downgrade). Returns how many channels it found (0 for a value of another shape). Raises nothing of its own.';

COMMIT;
