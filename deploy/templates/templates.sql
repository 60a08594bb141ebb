-- Deploy whatsapp_handler:templates/templates to pg
-- requires: core/channels core/assert_function
-- The message templates each channel may send, as the provider approved them: outside a
-- person's window only a template may be sent, and only an approved one with the right
-- number of parameters (WhatsApp refuses the rest, and counts the refusals against the
-- number's quality). Kept current by template_upsert (the DBA, the sync command, Meta's
-- template webhooks); _template_for_send is the check every sender makes.
BEGIN;
SET LOCAL ROLE whatsapp_handler_owner;

CREATE TABLE whatsapp_handler.message_templates (
    channel_id           bigint NOT NULL REFERENCES whatsapp_handler.channels (id),
    name                 text NOT NULL CONSTRAINT message_templates_name_shape CHECK (name ~ '^[a-z0-9_]+$' AND char_length(name) <= 512),
    language             text NOT NULL CONSTRAINT message_templates_language_shape CHECK (language ~ '^[a-z]{2,3}(_[A-Za-z]{2,4})?$'),
    category             text NOT NULL
                         CONSTRAINT message_templates_category_known CHECK (category IN ('marketing', 'utility', 'authentication')),
    status               text NOT NULL
                         CONSTRAINT message_templates_status_known
                         CHECK (status IN ('approved', 'pending', 'rejected', 'paused', 'disabled', 'in_appeal', 'flagged',
                                           'pending_deletion', 'deleted', 'limit_exceeded', 'archived')),
    components           jsonb NOT NULL DEFAULT '[]'
                         CONSTRAINT message_templates_components_array CHECK (jsonb_typeof(components) = 'array'),
    header_parameters    integer NOT NULL DEFAULT 0,
    body_parameters      integer NOT NULL DEFAULT 0,
    button_parameters    integer NOT NULL DEFAULT 0,
    provider_template_id text CONSTRAINT message_templates_provider_template_id_length
                         CHECK (char_length(provider_template_id) BETWEEN 1 AND 128),
    status_reason        text CONSTRAINT message_templates_status_reason_length CHECK (char_length(status_reason) <= 512),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (channel_id, name, language)
);
COMMENT ON TABLE whatsapp_handler.message_templates IS 'The templates a channel may send, with their provider''s approval status; only approved ones are sent (templates/templates).';
COMMENT ON COLUMN whatsapp_handler.message_templates.components IS 'The template''s components as the provider lists them (Meta''s shape: HEADER, BODY, FOOTER, BUTTONS with their text and {{n}} placeholders).';
COMMENT ON COLUMN whatsapp_handler.message_templates.body_parameters IS 'Placeholders in the BODY text: a send must give exactly this many body parameters (header_parameters and button_parameters likewise).';
COMMENT ON COLUMN whatsapp_handler.message_templates.provider_template_id IS 'Twilio: the Content SID (HX...) the template is sent by; Meta sends by name and language.';

-- Distinct {{1}}, {{2}} or {{name}} placeholders in a text: the parameters a send must fill.
CREATE FUNCTION whatsapp_handler._placeholders(p_text text)
RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT pg_catalog.count(DISTINCT m[1])::integer
    FROM pg_catalog.regexp_matches(coalesce(p_text, ''), '\{\{\s*([A-Za-z0-9_]+)\s*\}\}', 'g') m
$$;
REVOKE ALL ON FUNCTION whatsapp_handler._placeholders(text) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler._placeholders(text) IS
    'Internal: how many distinct {{n}} or {{name}} placeholders a template text holds (0 for NULL). Raises nothing.';

CREATE FUNCTION whatsapp_handler.template_upsert(p_channel_id bigint, p_name text, p_language text, p_category text,
                                                 p_status text, p_components jsonb DEFAULT '[]',
                                                 p_provider_template_id text DEFAULT NULL, p_status_reason text DEFAULT NULL)
RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
DECLARE
    v_components jsonb := coalesce(p_components, '[]');
    v_previous   message_templates;
BEGIN
    IF NOT EXISTS (SELECT FROM channels WHERE id = p_channel_id) THEN
        RAISE EXCEPTION 'unknown channel %', coalesce(p_channel_id::text, 'NULL') USING ERRCODE = 'WH003',
            HINT = 'Pass the id of a channel (whatsapp_handler.channels).';
    END IF;
    IF jsonb_typeof(v_components) <> 'array'
       OR EXISTS (SELECT FROM jsonb_array_elements(v_components) c WHERE jsonb_typeof(c) <> 'object') THEN
        RAISE EXCEPTION 'template components are not an array of objects' USING ERRCODE = 'WH008',
            HINT = 'Pass the components as the provider lists them: [{"type": "BODY", "text": "Hello {{1}}"}, ...].';
    END IF;
    SELECT * INTO v_previous FROM message_templates
    WHERE channel_id = p_channel_id AND name = p_name AND language = p_language FOR UPDATE;
    BEGIN
        INSERT INTO message_templates AS t (channel_id, name, language, category, status, components, header_parameters,
                                            body_parameters, button_parameters, provider_template_id, status_reason)
        SELECT p_channel_id, p_name, p_language, lower(p_category), lower(p_status), v_components,
               coalesce(sum(_placeholders(c ->> 'text')) FILTER (WHERE upper(c ->> 'type') = 'HEADER'), 0),
               coalesce(sum(_placeholders(c ->> 'text')) FILTER (WHERE upper(c ->> 'type') = 'BODY'), 0),
               coalesce((SELECT sum(_placeholders(b ->> 'url'))
                         FROM jsonb_array_elements(v_components) bc,
                              jsonb_array_elements(CASE WHEN jsonb_typeof(bc -> 'buttons') = 'array' THEN bc -> 'buttons' ELSE '[]' END) b
                         WHERE upper(bc ->> 'type') = 'BUTTONS'), 0),
               p_provider_template_id, p_status_reason
        FROM (SELECT 1) one LEFT JOIN jsonb_array_elements(v_components) c ON true
        ON CONFLICT (channel_id, name, language) DO UPDATE
            SET category = EXCLUDED.category, status = EXCLUDED.status, components = EXCLUDED.components,
                header_parameters = EXCLUDED.header_parameters, body_parameters = EXCLUDED.body_parameters,
                button_parameters = EXCLUDED.button_parameters,
                provider_template_id = coalesce(EXCLUDED.provider_template_id, t.provider_template_id),
                status_reason = EXCLUDED.status_reason, updated_at = now();
    EXCEPTION WHEN check_violation OR not_null_violation THEN
        RAISE EXCEPTION 'invalid template %', coalesce(p_name, 'NULL') USING ERRCODE = 'WH008',
            HINT = 'A template has a name of [a-z0-9_], a language such as en or en_US, a category (marketing, utility, authentication) and a status (approved, pending, rejected, paused, disabled, ...).';
    END;
    RETURN v_previous IS NULL OR v_previous.status IS DISTINCT FROM lower(p_status);
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler.template_upsert(bigint, text, text, text, text, jsonb, text, text) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler.template_upsert(bigint, text, text, text, text, jsonb, text, text) IS
    'Records a channel''s template as the provider lists it (category, status, components; Twilio''s Content SID), counting the placeholders a send must fill; returns whether it is new or its status changed. For the DBA and the template sync. Raises WH003 unknown channel, WH008 a malformed name, language, category, status or components.';

-- Every sender checks a template here. p_template is Meta's template object of a send:
-- {"name", "language": {"code"}, "components": [{"type": "body", "parameters": [...]}, ...]}.
CREATE FUNCTION whatsapp_handler._template_for_send(p_channel_id bigint, p_template jsonb)
RETURNS whatsapp_handler.message_templates
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
DECLARE
    v_template message_templates;
    v_given    record;
BEGIN
    SELECT * INTO v_template FROM message_templates
    WHERE channel_id = p_channel_id AND name = p_template ->> 'name' AND language = p_template #>> '{language,code}';
    IF NOT FOUND THEN
        RAISE EXCEPTION 'unknown template % (%) on this channel', left(p_template ->> 'name', 64), left(p_template #>> '{language,code}', 16)
            USING ERRCODE = 'WH065',
            HINT = 'Send a template the channel''s registry lists (whatsapp_handler.message_templates; `whatsapp-handler templates sync`).';
    END IF;
    IF v_template.status <> 'approved' THEN
        RAISE EXCEPTION 'template % (%) is %, not approved', v_template.name, v_template.language, v_template.status
            USING ERRCODE = 'WH066', HINT = 'Only approved templates are sent; the provider''s review or quality rating decides.';
    END IF;
    SELECT coalesce(sum(jsonb_array_length(c -> 'parameters')) FILTER (WHERE lower(c ->> 'type') = 'header'), 0) AS header,
           coalesce(sum(jsonb_array_length(c -> 'parameters')) FILTER (WHERE lower(c ->> 'type') = 'body'), 0) AS body,
           coalesce(sum(jsonb_array_length(c -> 'parameters')) FILTER (WHERE lower(c ->> 'type') = 'button'), 0) AS button
    INTO v_given
    FROM jsonb_array_elements(coalesce(p_template -> 'components', '[]')) c;
    IF (v_given.header, v_given.body, v_given.button)
       IS DISTINCT FROM (v_template.header_parameters, v_template.body_parameters, v_template.button_parameters) THEN
        RAISE EXCEPTION 'template % (%) takes % header, % body and % button parameters; % , % and % given',
                        v_template.name, v_template.language, v_template.header_parameters, v_template.body_parameters,
                        v_template.button_parameters, v_given.header, v_given.body, v_given.button
            USING ERRCODE = 'WH067', HINT = 'Give one parameter per placeholder of each component (components[].parameters).';
    END IF;
    RETURN v_template;
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler._template_for_send(bigint, jsonb) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler._template_for_send(bigint, jsonb) IS
    'Internal: the registry row of the template a send names (p_template: Meta''s template object), when it is approved and given one parameter per placeholder. Raises WH065 unknown template, WH066 not approved, WH067 wrong parameter count.';

COMMIT;
