-- Deploy whatsapp_handler:sending/message_shape to pg
-- requires: core/schema
-- What a business message may look like: Meta's Cloud API message object (type, the
-- object of that type, an optional context), checked field by field before anything is
-- queued, so that a malformed message is refused with the field named instead of being
-- tried and dead-lettered. The limits are WhatsApp's.
BEGIN;
SET LOCAL ROLE whatsapp_handler_owner;

-- One refusal, one shape of error: the hint names the field.
CREATE FUNCTION whatsapp_handler._shape_error(p_field text, p_rule text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
BEGIN
    RAISE EXCEPTION 'malformed message: % %', p_field, p_rule USING ERRCODE = 'WH062',
        HINT = 'The message is Meta''s Cloud API message object: "type" and the object of that type (docs/sending.md).';
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler._shape_error(text, text) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler._shape_error(text, text) IS
    'Internal: raises WH062 naming the field of a business message and what it breaks.';

-- A string of 1 to p_max characters at p_path of p_object (or absent, when optional).
CREATE FUNCTION whatsapp_handler._shape_text(p_object jsonb, p_field text, p_max integer, p_required boolean DEFAULT true,
                                             p_prefix text DEFAULT '')
RETURNS text
LANGUAGE plpgsql
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
DECLARE
    v_value jsonb := p_object -> p_field;
BEGIN
    IF v_value IS NULL OR v_value = 'null' THEN
        IF p_required THEN
            PERFORM _shape_error(p_prefix || p_field, 'is required');
        END IF;
        RETURN NULL;
    END IF;
    IF jsonb_typeof(v_value) <> 'string' OR char_length(v_value #>> '{}') NOT BETWEEN 1 AND p_max THEN
        PERFORM _shape_error(p_prefix || p_field, format('is a string of 1 to %s characters', p_max));
    END IF;
    RETURN v_value #>> '{}';
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler._shape_text(jsonb, text, integer, boolean, text) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler._shape_text(jsonb, text, integer, boolean, text) IS
    'Internal: the string p_object.p_field, checked to be 1 to p_max characters (NULL when absent and not p_required). Raises WH062 naming p_prefix || p_field.';

-- Only the keys a type has: a misspelt key would otherwise be dropped without a word.
CREATE FUNCTION whatsapp_handler._shape_keys(p_object jsonb, p_allowed text[], p_prefix text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
DECLARE
    v_key text;
BEGIN
    IF jsonb_typeof(p_object) IS DISTINCT FROM 'object' THEN
        PERFORM _shape_error(rtrim(p_prefix, '.'), 'is an object');
    END IF;
    SELECT k INTO v_key FROM jsonb_object_keys(p_object) k WHERE NOT k = ANY (p_allowed) ORDER BY k LIMIT 1;
    IF FOUND THEN
        PERFORM _shape_error(p_prefix || left(v_key, 64), 'is not a field here (allowed: ' || array_to_string(p_allowed, ', ') || ')');
    END IF;
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler._shape_keys(jsonb, text[], text) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler._shape_keys(jsonb, text[], text) IS
    'Internal: raises WH062 unless p_object is an object whose keys are all in p_allowed.';

-- SQL evaluates both sides of an OR in any order: a cast or a length is only taken of what
-- is known to be a number or an array.
CREATE FUNCTION whatsapp_handler._shape_number(p_value jsonb, p_min numeric, p_max numeric)
RETURNS boolean
LANGUAGE sql IMMUTABLE
AS $$
    SELECT CASE WHEN pg_catalog.jsonb_typeof(p_value) OPERATOR(pg_catalog.=) 'number'
                THEN (p_value OPERATOR(pg_catalog.#>>) '{}')::numeric BETWEEN p_min AND p_max ELSE false END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler._shape_number(jsonb, numeric, numeric) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler._shape_number(jsonb, numeric, numeric) IS
    'Internal: whether p_value is a JSON number from p_min to p_max. Raises nothing.';

CREATE FUNCTION whatsapp_handler._shape_length(p_value jsonb)
RETURNS integer
LANGUAGE sql IMMUTABLE
AS $$
    SELECT CASE WHEN pg_catalog.jsonb_typeof(p_value) OPERATOR(pg_catalog.=) 'array'
                THEN pg_catalog.jsonb_array_length(p_value) ELSE -1 END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler._shape_length(jsonb) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler._shape_length(jsonb) IS
    'Internal: the length of p_value when it is a JSON array, -1 otherwise. Raises nothing.';

CREATE FUNCTION whatsapp_handler._shape_interactive(p_object jsonb)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
DECLARE
    v_kind    text;
    v_action  jsonb;
    v_item    jsonb;
    v_section jsonb;
    v_rows    integer := 0;
BEGIN
    PERFORM _shape_keys(p_object, ARRAY['type', 'header', 'body', 'footer', 'action'], 'interactive.');
    v_kind := _shape_text(p_object, 'type', 16, true, 'interactive.');
    IF v_kind NOT IN ('button', 'list') THEN
        PERFORM _shape_error('interactive.type', 'is button or list');
    END IF;
    PERFORM _shape_keys(p_object -> 'body', ARRAY['text'], 'interactive.body.');
    PERFORM _shape_text(p_object -> 'body', 'text', 1024, true, 'interactive.body.');
    IF p_object ? 'footer' THEN
        PERFORM _shape_keys(p_object -> 'footer', ARRAY['text'], 'interactive.footer.');
        PERFORM _shape_text(p_object -> 'footer', 'text', 60, true, 'interactive.footer.');
    END IF;
    IF p_object ? 'header' THEN
        PERFORM _shape_keys(p_object -> 'header', ARRAY['type', 'text'], 'interactive.header.');
        IF p_object #>> '{header,type}' IS DISTINCT FROM 'text' THEN
            PERFORM _shape_error('interactive.header.type', 'is text');
        END IF;
        PERFORM _shape_text(p_object -> 'header', 'text', 60, true, 'interactive.header.');
    END IF;
    v_action := p_object -> 'action';
    IF v_kind = 'button' THEN
        PERFORM _shape_keys(v_action, ARRAY['buttons'], 'interactive.action.');
        IF _shape_length(v_action -> 'buttons') NOT BETWEEN 1 AND 3 THEN
            PERFORM _shape_error('interactive.action.buttons', 'is an array of 1 to 3 buttons');
        END IF;
        FOR v_item IN SELECT b FROM jsonb_array_elements(v_action -> 'buttons') b LOOP
            PERFORM _shape_keys(v_item, ARRAY['type', 'reply'], 'interactive.action.buttons[].');
            IF v_item ->> 'type' IS DISTINCT FROM 'reply' THEN
                PERFORM _shape_error('interactive.action.buttons[].type', 'is reply');
            END IF;
            PERFORM _shape_keys(v_item -> 'reply', ARRAY['id', 'title'], 'interactive.action.buttons[].reply.');
            PERFORM _shape_text(v_item -> 'reply', 'id', 256, true, 'interactive.action.buttons[].reply.');
            PERFORM _shape_text(v_item -> 'reply', 'title', 20, true, 'interactive.action.buttons[].reply.');
        END LOOP;
    ELSE
        PERFORM _shape_keys(v_action, ARRAY['button', 'sections'], 'interactive.action.');
        PERFORM _shape_text(v_action, 'button', 20, true, 'interactive.action.');
        IF _shape_length(v_action -> 'sections') NOT BETWEEN 1 AND 10 THEN
            PERFORM _shape_error('interactive.action.sections', 'is an array of 1 to 10 sections');
        END IF;
        FOR v_section IN SELECT s FROM jsonb_array_elements(v_action -> 'sections') s LOOP
            PERFORM _shape_keys(v_section, ARRAY['title', 'rows'], 'interactive.action.sections[].');
            PERFORM _shape_text(v_section, 'title', 24, false, 'interactive.action.sections[].');
            IF _shape_length(v_section -> 'rows') < 1 THEN
                PERFORM _shape_error('interactive.action.sections[].rows', 'is an array of at least one row');
            END IF;
            FOR v_item IN SELECT r FROM jsonb_array_elements(v_section -> 'rows') r LOOP
                PERFORM _shape_keys(v_item, ARRAY['id', 'title', 'description'], 'interactive.action.sections[].rows[].');
                PERFORM _shape_text(v_item, 'id', 200, true, 'interactive.action.sections[].rows[].');
                PERFORM _shape_text(v_item, 'title', 24, true, 'interactive.action.sections[].rows[].');
                PERFORM _shape_text(v_item, 'description', 72, false, 'interactive.action.sections[].rows[].');
                v_rows := v_rows + 1;
            END LOOP;
        END LOOP;
        IF v_rows > 10 THEN
            PERFORM _shape_error('interactive.action.sections', 'hold at most 10 rows in all');
        END IF;
    END IF;
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler._shape_interactive(jsonb) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler._shape_interactive(jsonb) IS
    'Internal: raises WH062 unless p_object is an interactive message of type button (1-3 reply buttons) or list (1-10 sections, at most 10 rows), with WhatsApp''s length limits.';

-- The content a message keeps: the type and its object (and context), nothing the API
-- wrapped around it (to, channel_id, Meta's messaging_product and recipient_type).
CREATE FUNCTION whatsapp_handler._message_shape(p_message jsonb)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
DECLARE
    v_type    text;
    v_object  jsonb;
    v_content jsonb;
BEGIN
    IF jsonb_typeof(p_message) IS DISTINCT FROM 'object' THEN
        PERFORM _shape_error('the message', 'is a JSON object');
    END IF;
    v_type := _shape_text(p_message, 'type', 16);
    IF v_type NOT IN ('text', 'template', 'image', 'document', 'audio', 'video', 'location', 'interactive', 'reaction') THEN
        PERFORM _shape_error('type', 'is one of text, template, image, document, audio, video, location, interactive, reaction');
    END IF;
    PERFORM _shape_keys(p_message, ARRAY['messaging_product', 'recipient_type', 'to', 'channel_id', 'type', 'context',
                                         'text', 'template', 'image', 'document', 'audio', 'video', 'location',
                                         'interactive', 'reaction'], '');
    IF p_message ? 'messaging_product' AND p_message ->> 'messaging_product' IS DISTINCT FROM 'whatsapp' THEN
        PERFORM _shape_error('messaging_product', 'is whatsapp when given');
    END IF;
    IF p_message ? 'recipient_type' AND p_message ->> 'recipient_type' IS DISTINCT FROM 'individual' THEN
        PERFORM _shape_error('recipient_type', 'is individual when given (groups are not sent to)');
    END IF;
    IF (SELECT count(*) FROM jsonb_object_keys(p_message) k
        WHERE k IN ('text', 'template', 'image', 'document', 'audio', 'video', 'location', 'interactive', 'reaction')) <> 1
       OR NOT p_message ? v_type THEN
        PERFORM _shape_error(v_type, 'is the one message object, named as the type');
    END IF;
    v_object := p_message -> v_type;
    CASE v_type
    WHEN 'text' THEN
        PERFORM _shape_keys(v_object, ARRAY['body', 'preview_url'], 'text.');
        PERFORM _shape_text(v_object, 'body', 4096, true, 'text.');
        IF v_object ? 'preview_url' AND jsonb_typeof(v_object -> 'preview_url') <> 'boolean' THEN
            PERFORM _shape_error('text.preview_url', 'is true or false');
        END IF;
    WHEN 'template' THEN
        PERFORM _shape_keys(v_object, ARRAY['name', 'language', 'components'], 'template.');
        IF coalesce(v_object ->> 'name', '') !~ '^[a-z0-9_]+$' OR char_length(v_object ->> 'name') > 512 THEN
            PERFORM _shape_error('template.name', 'is the template''s name ([a-z0-9_], 1 to 512)');
        END IF;
        PERFORM _shape_keys(v_object -> 'language', ARRAY['code', 'policy'], 'template.language.');
        IF coalesce(v_object #>> '{language,code}', '') !~ '^[a-z]{2,3}(_[A-Za-z]{2,4})?$' THEN
            PERFORM _shape_error('template.language.code', 'is a language code such as en or en_US');
        END IF;
        IF v_object ? 'components' AND (jsonb_typeof(v_object -> 'components') <> 'array'
            OR EXISTS (SELECT FROM jsonb_array_elements(v_object -> 'components') c
                       WHERE jsonb_typeof(c) <> 'object' OR coalesce(lower(c ->> 'type'), '') NOT IN ('header', 'body', 'button')
                          OR (c ? 'parameters' AND jsonb_typeof(c -> 'parameters') <> 'array'))) THEN
            PERFORM _shape_error('template.components', 'is an array of {"type": header|body|button, "parameters": [...]}');
        END IF;
    WHEN 'image', 'document', 'audio', 'video' THEN
        PERFORM _shape_keys(v_object, CASE v_type WHEN 'document' THEN ARRAY['link', 'id', 'caption', 'filename']
                                                  WHEN 'audio' THEN ARRAY['link', 'id']
                                                  ELSE ARRAY['link', 'id', 'caption'] END, v_type || '.');
        IF (v_object ? 'link') = (v_object ? 'id') THEN
            PERFORM _shape_error(v_type, 'has either link (https) or id (an uploaded medium)');
        END IF;
        IF v_object ? 'link' AND (coalesce(v_object ->> 'link', '') !~ '^https://[^\s/?#]+\S*$' OR char_length(v_object ->> 'link') > 2048) THEN
            PERFORM _shape_error(v_type || '.link', 'is an https URL of at most 2048 characters');
        END IF;
        PERFORM _shape_text(v_object, 'id', 128, false, v_type || '.');
        PERFORM _shape_text(v_object, 'caption', 1024, false, v_type || '.');
        PERFORM _shape_text(v_object, 'filename', 240, false, v_type || '.');
    WHEN 'location' THEN
        PERFORM _shape_keys(v_object, ARRAY['latitude', 'longitude', 'name', 'address'], 'location.');
        IF NOT _shape_number(v_object -> 'latitude', -90, 90) THEN
            PERFORM _shape_error('location.latitude', 'is a number from -90 to 90');
        END IF;
        IF NOT _shape_number(v_object -> 'longitude', -180, 180) THEN
            PERFORM _shape_error('location.longitude', 'is a number from -180 to 180');
        END IF;
        PERFORM _shape_text(v_object, 'name', 1000, false, 'location.');
        PERFORM _shape_text(v_object, 'address', 1000, false, 'location.');
    WHEN 'interactive' THEN
        PERFORM _shape_interactive(v_object);
    WHEN 'reaction' THEN
        PERFORM _shape_keys(v_object, ARRAY['message_id', 'emoji'], 'reaction.');
        PERFORM _shape_text(v_object, 'message_id', 256, true, 'reaction.');
        -- An empty emoji takes a reaction back.
        IF jsonb_typeof(v_object -> 'emoji') IS DISTINCT FROM 'string' OR char_length(v_object ->> 'emoji') > 16 THEN
            PERFORM _shape_error('reaction.emoji', 'is an emoji (or "" to take the reaction back)');
        END IF;
    END CASE;
    v_content := jsonb_build_object('type', v_type, v_type, v_object);
    IF p_message ? 'context' THEN
        PERFORM _shape_keys(p_message -> 'context', ARRAY['message_id'], 'context.');
        PERFORM _shape_text(p_message -> 'context', 'message_id', 256, true, 'context.');
        v_content := v_content || jsonb_build_object('context', p_message -> 'context');
    END IF;
    RETURN v_content;
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler._message_shape(jsonb) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler._message_shape(jsonb) IS
    'Internal: the content of a business message (type, its object, context) once p_message is a well-formed Meta Cloud API message object of type text, template, image, document, audio, video, location, interactive or reaction. Raises WH062 naming the first field that is wrong.';

COMMIT;
