-- Deploy whatsapp_handler:campaigns/quality to pg
-- requires: campaigns/campaigns channels/standing
-- Meta's word on a business number's standing (phone_number_quality_update: FLAGGED when its
-- quality rating fell to low, DOWNGRADE when its messaging limit was lowered) is kept with the
-- channel's standing (channels/standing). A number flagged or downgraded is one that
-- recipients block or report: its campaigns pause by themselves, before more sends make it
-- worse; an operator resumes them once the cause is understood. The rule is the campaigns',
-- so it lives here, as a trigger on the standing.
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
    FOR v_campaign IN SELECT id FROM campaigns
                      WHERE channel_id = NEW.channel_id AND state IN ('scheduled', 'running', 'budget_exhausted')
                      ORDER BY id LOOP
        PERFORM _campaign_move(v_campaign, 'paused', 'quality_' || lower(NEW.quality_event));
    END LOOP;
    RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler._campaigns_pause_on_quality() FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler._campaigns_pause_on_quality() IS
    'Internal: trigger on channel_standing: when a channel''s number becomes FLAGGED or is downgraded (DOWNGRADE, a new limit), its scheduled, running and budget-stopped campaigns pause (reason quality_flagged, quality_downgrade). Raises nothing of its own.';

CREATE TRIGGER channel_standing_campaigns_pause
AFTER UPDATE OF quality_event, current_limit ON whatsapp_handler.channel_standing
FOR EACH ROW WHEN (NEW.quality_event IN ('FLAGGED', 'DOWNGRADE')
                   AND (OLD.quality_event, OLD.current_limit) IS DISTINCT FROM (NEW.quality_event, NEW.current_limit))
EXECUTE FUNCTION whatsapp_handler._campaigns_pause_on_quality();

COMMIT;
