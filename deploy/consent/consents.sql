-- Deploy whatsapp_handler:consent/consents to pg
-- requires: users/users core/channels outbox/event_envelope core/correlation_id
-- A person's consent to hear from a business, per channel: one brand's STOP does not
-- silence another brand. The rule of who may receive what (docs/sending.md) is
-- _check_consent; every sender asks it.
BEGIN;
SET LOCAL ROLE whatsapp_handler_owner;

CREATE TABLE whatsapp_handler.consents (
    user_id     bigint NOT NULL REFERENCES whatsapp_handler.users (id) ON DELETE CASCADE,
    channel_id  bigint NOT NULL REFERENCES whatsapp_handler.channels (id),
    status      text NOT NULL CONSTRAINT consents_status_known CHECK (status IN ('opted_in', 'opted_out')),
    source      text NOT NULL CONSTRAINT consents_source_shape CHECK (source ~ '^[a-z0-9][a-z0-9_.:-]{0,63}$'),
    changed_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, channel_id)
);
COMMENT ON TABLE whatsapp_handler.consents IS 'The latest consent of a user on a channel: opted_in (with where it was given) or opted_out (STOP, the business, or the provider''s signal). No row: neither given nor withdrawn. Each change is also an event (consent.changed).';
COMMENT ON COLUMN whatsapp_handler.consents.source IS 'Where the latest change came from: keyword:stop, keyword:start, provider:131050, or the business''s own word (api:<what>, e.g. api:checkout-form).';
CREATE INDEX consents_channel_idx ON whatsapp_handler.consents (channel_id, status);

-- Internal: the one writer. Emits consent.changed only when the status changes, so a
-- repeated STOP or a retried API call says nothing twice.
CREATE FUNCTION whatsapp_handler._record_consent(p_user_id bigint, p_channel_id bigint, p_opt_in boolean, p_source text)
RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
DECLARE
    v_status   text := CASE WHEN p_opt_in THEN 'opted_in' ELSE 'opted_out' END;
    v_previous text;
BEGIN
    IF p_opt_in IS NULL OR p_source IS NULL OR p_source !~ '^[a-z0-9][a-z0-9_.:-]{0,63}$' THEN
        RAISE EXCEPTION 'a consent needs opt_in true or false and a source' USING ERRCODE = 'WH008',
            HINT = 'A source is 1-64 of lower-case letters, digits and _.:- naming where consent was given or withdrawn, e.g. api:checkout-form.';
    END IF;
    SELECT status INTO v_previous FROM consents WHERE user_id = p_user_id AND channel_id = p_channel_id FOR UPDATE;
    IF v_previous IS NOT DISTINCT FROM v_status THEN
        RETURN false;
    END IF;
    INSERT INTO consents AS c (user_id, channel_id, status, source) VALUES (p_user_id, p_channel_id, v_status, p_source)
    ON CONFLICT (user_id, channel_id) DO UPDATE SET status = EXCLUDED.status, source = EXCLUDED.source, changed_at = now();
    PERFORM _emit_event('consent.changed', p_user_id,
                        jsonb_build_object('channel_id', p_channel_id, 'status', v_status,
                                           'previous_status', v_previous, 'source', p_source));
    RETURN true;
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler._record_consent(bigint, bigint, boolean, text) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler._record_consent(bigint, bigint, boolean, text) IS
    'Internal: records that the user opted in (p_opt_in) or out on the channel, from p_source, and emits consent.changed; returns false (and emits nothing) when that was already the status. Raises WH008 for a missing choice or a malformed source.';

-- The rule (docs/sending.md, consent): marketing templates need an opt-in that was not
-- withdrawn; utility templates go to anyone who has not opted out; authentication
-- templates (a code the person asked for) always; free-form messages are answers inside
-- the person's own window (sending/window) and need no more than that.
CREATE FUNCTION whatsapp_handler._check_consent(p_user_id bigint, p_channel_id bigint, p_category text)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
DECLARE
    v_status text;
BEGIN
    IF p_category IS NULL OR p_category = 'authentication' THEN
        RETURN;
    END IF;
    SELECT status INTO v_status FROM consents WHERE user_id = p_user_id AND channel_id = p_channel_id;
    IF v_status = 'opted_out' THEN
        RAISE EXCEPTION 'the recipient opted out on this channel' USING ERRCODE = 'WH068',
            HINT = 'Only authentication templates and answers inside the recipient''s 24-hour window reach a person who opted out; they opt in again by START or through the consent API.';
    END IF;
    IF p_category = 'marketing' AND v_status IS DISTINCT FROM 'opted_in' THEN
        RAISE EXCEPTION 'no marketing opt-in from the recipient on this channel' USING ERRCODE = 'WH068',
            HINT = 'Record the person''s opt-in first (POST /v1/people/consent with opt_in true and its source).';
    END IF;
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler._check_consent(bigint, bigint, text) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler._check_consent(bigint, bigint, text) IS
    'Internal: raises WH068 unless the user may receive a template of category p_category (marketing, utility, authentication; NULL for a free-form message) on the channel: marketing needs an opt-in not withdrawn, utility no opt-out, authentication and free-form nothing.';

COMMIT;
