-- Deploy whatsapp_handler:templates/status_updates to pg
-- requires: templates/templates outbox/event_envelope core/channels
-- Meta reviews and rates templates per WhatsApp Business Account (WABA), and tells by
-- account-level webhooks (entry.id the account, no phone number): the review's outcome
-- and later pauses and disables (message_template_status_update), a new category
-- (template_category_update), a new quality rating (message_template_quality_update).
-- The registry is per channel, a channel being one phone number of an account, so an
-- update finds its rows in two ways:
--  * by Meta's template id, kept in message_templates.provider_template_id once known
--    (the sync may record it; the first update found by name records it): ids are
--    Meta's, unique across accounts;
--  * by name and language on every Meta channel of that account. Which channels belong
--    to an account is learned from the webhooks themselves: each "messages" change comes
--    in an entry whose id is the account (providers/meta records it per phone_number_id
--    in meta_channel_accounts). A template of one account never moves another account's
--    registry, even of the same name (two brands on two accounts).
-- An update that finds no row is kept raw only (the webhook's outcome stays "stored") and
-- counted (templates_unmatched: the relay's whatsapp_template_updates_unmatched_total): the
-- registry is then stale until the sync, and Meta refuses what it still lets through.
BEGIN;
SET LOCAL ROLE whatsapp_handler_owner;

CREATE TABLE whatsapp_handler.meta_channel_accounts (
    channel_id bigint PRIMARY KEY REFERENCES whatsapp_handler.channels (id) ON DELETE CASCADE,
    account_id text NOT NULL CONSTRAINT meta_channel_accounts_account_id_shape CHECK (account_id ~ '^[0-9]{1,32}$'),
    seen_at    timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE whatsapp_handler.meta_channel_accounts IS 'The WhatsApp Business Account (Meta''s WABA id, a webhook''s entry.id) each Meta channel''s webhooks came from, learned by providers/meta: the channels a template webhook of that account is about.';
COMMENT ON COLUMN whatsapp_handler.meta_channel_accounts.seen_at IS 'When the account was last learned or changed for the channel.';
CREATE INDEX meta_channel_accounts_account_idx ON whatsapp_handler.meta_channel_accounts (account_id);

ALTER TABLE whatsapp_handler.message_templates
    ADD COLUMN quality_score text CONSTRAINT message_templates_quality_score_known
        CHECK (quality_score IN ('green', 'yellow', 'red', 'unknown'));
COMMENT ON COLUMN whatsapp_handler.message_templates.quality_score IS 'Meta''s quality rating of the template (green, yellow, red, unknown) from its message_template_quality_update webhooks; NULL before the first. A red template is usually paused next (a status update).';

-- Internal: the account a Meta channel's webhooks come from; called by the normaliser
-- for every change, so it writes only when the account is new or changed.
CREATE FUNCTION whatsapp_handler._learn_meta_account(p_channel_id bigint, p_account_id text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
BEGIN
    IF p_account_id IS NULL OR p_account_id !~ '^[0-9]{1,32}$' THEN
        RETURN;  -- a body without entry.id (a hand-made one) teaches nothing
    END IF;
    INSERT INTO meta_channel_accounts AS a (channel_id, account_id) VALUES (p_channel_id, p_account_id)
    ON CONFLICT (channel_id) DO UPDATE SET account_id = EXCLUDED.account_id, seen_at = now()
        WHERE a.account_id IS DISTINCT FROM EXCLUDED.account_id;
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler._learn_meta_account(bigint, text) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler._learn_meta_account(bigint, text) IS
    'Internal: records that the Meta channel''s webhooks come from WhatsApp Business Account p_account_id (a webhook''s entry.id); ignores a missing or malformed id. Raises nothing.';

CREATE FUNCTION whatsapp_handler._meta_template_update(p_account_id text, p_field text, p_value jsonb)
RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
DECLARE
    v_id       text := nullif(p_value ->> 'message_template_id', '');
    v_name     text := p_value ->> 'message_template_name';
    v_language text := replace(p_value ->> 'message_template_language', '-', '_');
    v_event    text := upper(p_value ->> 'event');
    v_status   text;
    v_reason   text;
    v_category text;
    v_quality  text;
    v_row      record;
    v_found    integer := 0;
BEGIN
    IF p_field = 'message_template_status_update' THEN
        -- Meta's events, as the registry's statuses. REINSTATED: approved again after a
        -- pause or an appeal. LOCKED/UNLOCKED say whether it may be edited, not sent: no
        -- status. An event Meta adds later is kept raw until it is mapped here.
        v_status := CASE v_event
            WHEN 'REINSTATED' THEN 'approved'
            WHEN 'APPROVED' THEN 'approved' WHEN 'PENDING' THEN 'pending' WHEN 'REJECTED' THEN 'rejected'
            WHEN 'PAUSED' THEN 'paused' WHEN 'DISABLED' THEN 'disabled' WHEN 'IN_APPEAL' THEN 'in_appeal'
            WHEN 'FLAGGED' THEN 'flagged' WHEN 'PENDING_DELETION' THEN 'pending_deletion' WHEN 'DELETED' THEN 'deleted'
            WHEN 'LIMIT_EXCEEDED' THEN 'limit_exceeded' WHEN 'ARCHIVED' THEN 'archived'
        END;
        IF v_status IS NULL THEN
            RETURN NULL;
        END IF;
        v_reason := left(nullif(nullif(coalesce(p_value #>> '{rejection_info,reason}', p_value ->> 'reason'), 'NONE'), ''), 512);
    ELSIF p_field = 'template_category_update' THEN
        v_category := lower(coalesce(p_value ->> 'new_category', p_value ->> 'correct_category'));
        IF v_category IS NULL OR v_category NOT IN ('marketing', 'utility', 'authentication') THEN
            RETURN NULL;
        END IF;
    ELSIF p_field = 'message_template_quality_update' THEN
        v_quality := lower(p_value ->> 'new_quality_score');
        IF v_quality IS NULL OR v_quality NOT IN ('green', 'yellow', 'red', 'unknown') THEN
            RETURN NULL;
        END IF;
    ELSE
        RETURN NULL;
    END IF;

    FOR v_row IN
        SELECT t.channel_id, t.name, t.language, t.status, t.category, t.quality_score
        FROM message_templates t JOIN channels c ON c.id = t.channel_id AND c.provider = 'meta'
        WHERE (v_id IS NOT NULL AND t.provider_template_id = v_id)
           OR (t.name = v_name AND t.language = v_language
               AND t.channel_id IN (SELECT a.channel_id FROM meta_channel_accounts a WHERE a.account_id = p_account_id))
        ORDER BY t.channel_id
        FOR UPDATE OF t
    LOOP
        v_found := v_found + 1;
        UPDATE message_templates
        SET status = coalesce(v_status, status),
            status_reason = CASE WHEN v_status IS NOT NULL THEN v_reason ELSE status_reason END,
            category = coalesce(v_category, category),
            quality_score = coalesce(v_quality, quality_score),
            provider_template_id = coalesce(provider_template_id, left(v_id, 128)),
            updated_at = now()
        WHERE channel_id = v_row.channel_id AND name = v_row.name AND language = v_row.language;
        IF v_status IS DISTINCT FROM v_row.status AND v_status IS NOT NULL THEN
            PERFORM _emit_channel_event('template.status_changed', v_row.channel_id,
                jsonb_build_object('channel_id', v_row.channel_id, 'name', v_row.name, 'language', v_row.language,
                                   'status', v_status, 'previous_status', v_row.status, 'reason', v_reason,
                                   'provider_template_id', v_id));
        END IF;
        IF v_category IS DISTINCT FROM v_row.category AND v_category IS NOT NULL THEN
            PERFORM _emit_channel_event('template.category_changed', v_row.channel_id,
                jsonb_build_object('channel_id', v_row.channel_id, 'name', v_row.name, 'language', v_row.language,
                                   'category', v_category, 'previous_category', v_row.category,
                                   'provider_template_id', v_id));
        END IF;
    END LOOP;
    RETURN v_found;
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler._meta_template_update(text, text, jsonb) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler._meta_template_update(text, text, jsonb) IS
    'Internal: applies one of Meta''s account-level template webhooks (p_field message_template_status_update, template_category_update or message_template_quality_update; p_value its value) to the registry rows it is about: those holding its template id, and those of its name and language on the Meta channels of account p_account_id (meta_channel_accounts). Emits template.status_changed or template.category_changed per channel whose value changed. Returns the rows found, or NULL for a field or event it does not map (LOCKED, UNLOCKED, one Meta adds later). Raises nothing.';

COMMIT;
