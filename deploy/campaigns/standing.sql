-- Deploy whatsapp_handler:campaigns/standing to pg
-- requires: campaigns/campaigns channels/standing
-- Campaigns follow their channel's standing (channels/standing), by two triggers on it:
-- - Meta's word on the number (phone_number_quality_update: FLAGGED when its quality rating
--   fell to low, DOWNGRADE when its messaging limit was lowered). A number flagged or
--   downgraded is one that recipients block or report: its campaigns pause by themselves,
--   before more sends make it worse; an operator resumes them once the cause is understood.
-- - The channel going down (_channel_connected: its Evolution instance not open, its Meta
--   account disabled): its campaigns pause (channel_down) rather than spend their recipients
--   on sends that fail, and resume by themselves when it is back. Nothing was wrong with the
--   campaign, so no person needs to decide.
-- The rules are the campaigns', so they live here.
BEGIN;
SET LOCAL ROLE whatsapp_handler_owner;

CREATE FUNCTION whatsapp_handler._campaigns_pause_on_quality()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
DECLARE
    v_campaign bigint;
BEGIN
    -- One paused because its channel was down would resume by itself: flagged, it waits for a person.
    FOR v_campaign IN SELECT id FROM campaigns
                      WHERE channel_id = NEW.channel_id
                        AND (state IN ('scheduled', 'running', 'budget_exhausted')
                             OR (state = 'paused' AND state_reason = 'channel_down'))
                      ORDER BY id LOOP
        PERFORM _campaign_move(v_campaign, 'paused', 'quality_' || lower(NEW.quality_event));
    END LOOP;
    RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler._campaigns_pause_on_quality() FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler._campaigns_pause_on_quality() IS
    'Internal: trigger on channel_standing: when a channel''s number becomes FLAGGED or is downgraded (DOWNGRADE, a new limit), its scheduled, running and budget-stopped campaigns, and those paused because the channel was down, pause (reason quality_flagged, quality_downgrade) until an operator resumes them. Raises nothing of its own.';

CREATE TRIGGER channel_standing_campaigns_pause
AFTER UPDATE OF quality_event, current_limit ON whatsapp_handler.channel_standing
FOR EACH ROW WHEN (whatsapp_handler._quality_flagged(NEW.quality_event)
                   AND (OLD.quality_event, OLD.current_limit) IS DISTINCT FROM (NEW.quality_event, NEW.current_limit))
EXECUTE FUNCTION whatsapp_handler._campaigns_pause_on_quality();

CREATE FUNCTION whatsapp_handler._campaigns_follow_connection()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
DECLARE
    v_c campaigns;
BEGIN
    IF NOT _channel_connected(NEW.connection, NEW.account_disabled) THEN
        FOR v_c IN SELECT * FROM campaigns
                   WHERE channel_id = NEW.channel_id AND state IN ('scheduled', 'running', 'budget_exhausted')
                   ORDER BY id LOOP
            PERFORM _campaign_move(v_c.id, 'paused', 'channel_down');
        END LOOP;
    ELSE
        FOR v_c IN SELECT * FROM campaigns
                   WHERE channel_id = NEW.channel_id AND state = 'paused' AND state_reason = 'channel_down'
                   ORDER BY id LOOP
            PERFORM _campaign_move(v_c.id, _campaign_go_state(v_c.starts_at));
        END LOOP;
    END IF;
    RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler._campaigns_follow_connection() FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler._campaigns_follow_connection() IS
    'Internal: trigger on channel_standing when the channel goes down or comes back (_channel_connected): down, its scheduled, running and budget-stopped campaigns pause (reason channel_down); back, the campaigns paused for that reason go on (scheduled before their start, else running). Raises nothing of its own.';

CREATE TRIGGER channel_standing_campaigns_connection
AFTER UPDATE OF connection, account_disabled ON whatsapp_handler.channel_standing
FOR EACH ROW WHEN (whatsapp_handler._channel_connected(OLD.connection, OLD.account_disabled)
                   IS DISTINCT FROM whatsapp_handler._channel_connected(NEW.connection, NEW.account_disabled))
EXECUTE FUNCTION whatsapp_handler._campaigns_follow_connection();

COMMIT;
