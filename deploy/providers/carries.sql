-- Deploy whatsapp_handler:providers/carries to pg
-- requires: core/channels core/assert_function templates/templates
-- What each provider can carry of a business message, checked before it is queued: a
-- message the worker could not put into the provider's request is refused to the caller
-- with the reason, not dead-lettered later (docs/worker.md, business messages, holds the
-- same table from the worker's side).
BEGIN;
SET LOCAL ROLE whatsapp_handler_owner;

CREATE FUNCTION whatsapp_handler._check_carries(p_provider whatsapp_handler.provider, p_content jsonb,
                                                p_template whatsapp_handler.message_templates DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
DECLARE
    v_type   text := p_content ->> 'type';
    v_reason text;
BEGIN
    v_reason := CASE
        -- Twilio carries text, its Content templates, media by URL and a location; buttons,
        -- lists and reactions only through Content templates, and no quoted reply.
        WHEN p_provider = 'twilio' AND v_type IN ('interactive', 'reaction') THEN v_type || ' messages (send a Content template instead)'
        WHEN p_provider = 'twilio' AND v_type IN ('read', 'typing') THEN 'read receipts or typing indicators'
        WHEN p_provider = 'twilio' AND p_content ? 'context' THEN 'replies to a message (context)'
        WHEN p_provider = 'twilio' AND v_type = 'template' AND p_template.provider_template_id IS NULL
            THEN 'a template without its Content SID (template_upsert''s provider_template_id)'
        -- WhatsApp Web (Evolution) has no templates.
        WHEN p_provider = 'evolution' AND v_type = 'template' THEN 'templates'
        -- Evolution quotes a message only from a text or a medium with a caption.
        WHEN p_provider = 'evolution' AND v_type IN ('audio', 'reaction', 'location') AND p_content ? 'context'
            THEN 'a reply (context) as ' || v_type
        -- Media ids are Meta's uploads; the others fetch a link.
        WHEN p_provider <> 'meta' AND p_content -> v_type ? 'id' THEN 'media by id (give a link)'
    END;
    IF v_reason IS NOT NULL THEN
        RAISE EXCEPTION 'a % channel cannot send %', p_provider, v_reason USING ERRCODE = 'WH063',
            HINT = 'docs/sending.md lists what each provider carries; send it on a channel of another provider or in another form.';
    END IF;
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler._check_carries(whatsapp_handler.provider, jsonb, whatsapp_handler.message_templates) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler._check_carries(whatsapp_handler.provider, jsonb, whatsapp_handler.message_templates) IS
    'Internal: raises WH063 when a channel of provider p_provider cannot carry a business message of this content (_message_shape): Twilio no interactive, reaction, context, read receipt or typing indicator (content {"type": "read"}), and a template only with its Content SID (p_template); Evolution no template and no context on audio, reaction or location; neither a medium by id.';

COMMIT;
