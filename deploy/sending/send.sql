-- Deploy whatsapp_handler:sending/send to pg
-- requires: sending/api_keys sending/window sending/message_shape templates/templates consent/consents providers/carries users/register_user messages/messages queue/outbound outbox/event_envelope core/correlation_id core/pgcrypto
-- The business speaks: send_message queues one message and records it, in the transaction
-- that checks every rule (the key's channels, the shape, what the provider carries, the
-- window, the template, consent), so that nothing that breaks one reaches the queue.
-- send_messages does the same for many recipients in one call. A caller's idempotency key
-- makes a retry return the message it already queued, never a second one.
BEGIN;
SET LOCAL ROLE whatsapp_handler_owner;

CREATE TABLE whatsapp_handler.send_requests (
    api_key_id         bigint NOT NULL REFERENCES whatsapp_handler.api_keys (id) ON DELETE CASCADE,
    idempotency_key    text NOT NULL CONSTRAINT send_requests_key_shape CHECK (idempotency_key ~ '^[\x21-\x7e]{1,255}$'),
    request_hash       bytea NOT NULL,
    message_id         bigint NOT NULL,
    message_created_at timestamptz NOT NULL,
    created_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (api_key_id, idempotency_key)
);
COMMENT ON TABLE whatsapp_handler.send_requests IS 'One row per accepted send and caller''s idempotency key: a retry with the same key and body gets the same message back; the same key with another body is refused (WH069).';
COMMENT ON COLUMN whatsapp_handler.send_requests.request_hash IS 'SHA-256 of the channel, recipient and content: what makes two requests with one key "the same".';
CREATE INDEX send_requests_created_at_idx ON whatsapp_handler.send_requests (created_at);
INSERT INTO whatsapp_handler.settings (key, value, description) VALUES
    ('retention.send_requests', '"7 days"',
     'How long the send API remembers an idempotency key (send_requests): a retry within it gets its message back, the same key after it is a new message (at least 1 hour; null keeps them).');

-- A blocked person gets nothing from the business: no message, no read receipt.
CREATE FUNCTION whatsapp_handler._check_not_blocked(p_blocked_at timestamptz)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
BEGIN
    IF p_blocked_at IS NOT NULL THEN
        RAISE EXCEPTION 'the recipient is blocked' USING ERRCODE = 'WH004',
            HINT = 'A blocked person gets nothing until unblocked (unblock_user).';
    END IF;
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler._check_not_blocked(timestamptz) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler._check_not_blocked(timestamptz) IS
    'Internal: raises WH004 when the person is blocked (p_blocked_at, users.blocked_at, is set): the business sends them nothing, read receipts included. Raises WH004.';

-- The one path of a business message onto the queue, after its shape and recipient were
-- checked: every rule of who may receive what, the message recorded, queued and announced.
-- The send API (_send_one) and campaigns (campaigns/dispatch) both come through here.
CREATE FUNCTION whatsapp_handler._queue_business(p_channel whatsapp_handler.channels, p_phone text, p_content jsonb, p_message_id bigint,
                                                 p_at timestamptz, p_extra jsonb DEFAULT '{}', p_visible_at timestamptz DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
DECLARE
    v_user     users;
    v_template message_templates;
    v_type     text := p_content ->> 'type';
    v_body     text;
    v_queued   jsonb;
    v_msg_id   bigint;
BEGIN
    -- Two statements: a query does not see the rows a function it calls inserts.
    SELECT r.user_id INTO v_user.id FROM register_user(p_phone, p_channel.id) r;
    SELECT * INTO STRICT v_user FROM users WHERE id = v_user.id;
    PERFORM _check_not_blocked(v_user.blocked_at);
    IF v_type = 'template' THEN
        v_template := _template_for_send(p_channel.id, p_content -> 'template');
    END IF;
    PERFORM _check_carries(p_channel.provider, p_content, v_template);
    IF v_type <> 'template' THEN
        PERFORM _check_window(v_user.id, p_channel.id);
    END IF;
    PERFORM _check_consent(v_user.id, p_channel.id, v_template.category);

    v_body := coalesce(p_content #>> '{text,body}', p_content #>> ARRAY[v_type, 'caption'], p_content #>> '{template,name}',
                       p_content #>> '{interactive,body,text}', p_content #>> '{reaction,emoji}', p_content #>> '{location,name}');
    INSERT INTO messages (id, created_at, channel_id, user_id, conversation_id, direction, message_type, body, status, correlation_id)
    OVERRIDING SYSTEM VALUE
    SELECT p_message_id, p_at, p_channel.id, v_user.id, c.id, 'outbound', v_type, v_body, 'queued', correlation_id()
    FROM conversations c WHERE c.user_id = v_user.id AND c.channel_id = p_channel.id;
    v_queued := jsonb_build_object('kind', 'business', 'message_id', p_message_id, 'message_created_at', p_at,
                                   'channel_id', p_channel.id, 'user_id', v_user.id, 'to', p_phone, 'content', p_content,
                                   'correlation_id', correlation_id()) || coalesce(p_extra, '{}');
    IF v_template.name IS NOT NULL THEN
        -- Twilio sends a template by its Content SID with numbered variables: the body's parameters in order.
        v_queued := v_queued || jsonb_strip_nulls(jsonb_build_object(
            'provider_template_id', v_template.provider_template_id,
            'template_variables', (SELECT jsonb_object_agg(n::text, coalesce(p ->> 'text', p #>> '{currency,fallback_value}', p #>> '{date_time,fallback_value}', ''))
                                   FROM jsonb_array_elements(p_content #> '{template,components}') c,
                                        jsonb_array_elements(coalesce(c -> 'parameters', '[]')) WITH ORDINALITY AS t (p, n)
                                   WHERE lower(c ->> 'type') = 'body')));
    END IF;
    v_msg_id := _enqueue_outbound(v_queued, 'user:' || v_user.id);
    IF p_visible_at IS NOT NULL THEN
        -- Paced by its sender (a campaign's rate): not claimed before its turn.
        UPDATE pgmq.q_outbound SET vt = p_visible_at WHERE msg_id = v_msg_id;
    END IF;
    PERFORM _emit_event('message.queued', v_user.id,
                        jsonb_strip_nulls(jsonb_build_object('message_id', p_message_id, 'channel_id', p_channel.id, 'type', v_type,
                                                             'template', v_template.name, 'category', v_template.category)
                                          || coalesce(p_extra, '{}')));
    RETURN v_msg_id;
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler._queue_business(whatsapp_handler.channels, text, jsonb, bigint, timestamptz, jsonb, timestamptz) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler._queue_business(whatsapp_handler.channels, text, jsonb, bigint, timestamptz, jsonb, timestamptz) IS
    'Internal: queues business message p_message_id (created p_at; p_content: a checked Meta message object) to p_phone on a channel after the rules of who may receive what (blocked, template, what the provider carries, the window, consent), records it (status queued) and emits message.queued; p_extra is added to the queued message and the event (a campaign''s id), p_visible_at holds it back until then. Returns the outbound queue''s msg_id. Raises WH004, WH063, WH064, WH065, WH066, WH067, WH068 (docs/errors.md).';

-- The send API's path: the idempotency key claimed, then the one path above.
CREATE FUNCTION whatsapp_handler._send_one(p_key_id bigint, p_channel_id bigint, p_request jsonb, p_idempotency_key text,
                                           OUT message_id bigint, OUT duplicate boolean)
LANGUAGE plpgsql
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
DECLARE
    v_channel  channels;
    v_phone    text;
    v_content  jsonb;
    v_hash     bytea;
    v_prior    send_requests;
    v_at       timestamptz := now();
BEGIN
    SELECT * INTO v_channel FROM channels WHERE id = p_channel_id AND active;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'unknown or inactive channel %', coalesce(p_channel_id::text, 'NULL') USING ERRCODE = 'WH003',
            HINT = 'Pass the id of an active channel your key may send on.';
    END IF;
    IF p_idempotency_key IS NULL OR p_idempotency_key !~ '^[\x21-\x7e]{1,255}$' THEN
        RAISE EXCEPTION 'an idempotency key of 1 to 255 visible ASCII characters is required' USING ERRCODE = 'WH062',
            HINT = 'Send a key unique to this message (a UUID, or your own record''s id) in the Idempotency-Key header; repeat it on a retry.';
    END IF;
    v_phone := _check_phone(CASE WHEN jsonb_typeof(p_request -> 'to') = 'string' THEN p_request ->> 'to' END);
    v_content := _message_shape(p_request);

    -- The key is claimed before anything is queued: a concurrent request with the same key
    -- waits here for this one and then finds its row.
    v_hash := sha256(convert_to(p_channel_id::text || ' ' || v_phone || ' ' || v_content::text, 'UTF8'));
    message_id := nextval('whatsapp_handler.messages_id_seq');
    INSERT INTO send_requests (api_key_id, idempotency_key, request_hash, message_id, message_created_at)
    VALUES (p_key_id, p_idempotency_key, v_hash, message_id, v_at)
    ON CONFLICT DO NOTHING;
    IF NOT FOUND THEN
        SELECT * INTO STRICT v_prior FROM send_requests WHERE api_key_id = p_key_id AND idempotency_key = p_idempotency_key;
        IF v_prior.request_hash <> v_hash THEN
            RAISE EXCEPTION 'idempotency key already used for another message' USING ERRCODE = 'WH069',
                HINT = 'A key names one message: use a new key for a new message, the same key and body to retry.';
        END IF;
        message_id := v_prior.message_id;
        duplicate := true;
        RETURN;
    END IF;
    duplicate := false;
    -- What the rules read may change between a send and its retry: a retry of a send that
    -- was accepted has returned above, with the message it queued.
    PERFORM _queue_business(v_channel, v_phone, v_content, message_id, v_at);
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler._send_one(bigint, bigint, jsonb, text) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler._send_one(bigint, bigint, jsonb, text) IS
    'Internal: queues one business message (p_request: Meta''s message object with "to") on a channel for API key p_key_id, after every rule, and records it (status queued) and message.queued; returns (message_id, duplicate), duplicate true when p_idempotency_key already named this message. Raises WH003, WH001, WH062, WH063, WH069, WH004, WH064, WH065, WH066, WH067, WH068 (docs/errors.md).';

CREATE FUNCTION whatsapp_handler.send_message(p_key_hash bytea, p_request jsonb, p_idempotency_key text,
                                              p_correlation_id text DEFAULT NULL,
                                              OUT message_id bigint, OUT duplicate boolean)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
DECLARE
    v_channel_id bigint;
    v_key_id     bigint;
BEGIN
    IF p_correlation_id IS NOT NULL THEN
        PERFORM set_config('whatsapp_handler.correlation_id', left(p_correlation_id, 128), true);
    END IF;
    IF jsonb_typeof(p_request -> 'channel_id') IS DISTINCT FROM 'number' OR (p_request ->> 'channel_id') !~ '^[1-9][0-9]{0,17}$' THEN
        -- The key is checked first all the same: a stranger learns nothing from the shape.
        PERFORM _api_key_check(p_key_hash, NULL, 'send');
    END IF;
    v_channel_id := (p_request ->> 'channel_id')::bigint;
    v_key_id := _api_key_check(p_key_hash, v_channel_id, 'send');
    SELECT s.message_id, s.duplicate INTO message_id, duplicate FROM _send_one(v_key_id, v_channel_id, p_request, p_idempotency_key) s;
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler.send_message(bytea, jsonb, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION whatsapp_handler.send_message(bytea, jsonb, text, text) TO whatsapp_handler_relay;
COMMENT ON FUNCTION whatsapp_handler.send_message(bytea, jsonb, text, text) IS
    'POST /v1/messages: queues the business message p_request (Meta''s Cloud API message object plus "channel_id" and "to") for the API key whose SHA-256 is p_key_hash, once per p_idempotency_key; returns (message_id, duplicate). Raises WH060 unknown or revoked key, WH061 a channel outside the key''s, and every refusal of _send_one: WH003 channel, WH001 phone, WH062 shape, WH063 provider cannot carry it, WH069 key reused for another message, WH004 recipient blocked, WH064 outside the window, WH065/WH066/WH067 template unknown, not approved or wrong parameters, WH068 no consent.';

-- Many recipients in one call: each element in its own subtransaction, so that one refusal
-- costs only its element; the results say which.
CREATE FUNCTION whatsapp_handler.send_messages(p_key_hash bytea, p_channel_id bigint, p_requests jsonb,
                                               p_correlation_id text DEFAULT NULL)
RETURNS TABLE (index integer, message_id bigint, duplicate boolean, error_code text, error text)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
DECLARE
    v_key_id  bigint;
    v_request jsonb;
BEGIN
    IF p_correlation_id IS NOT NULL THEN
        PERFORM set_config('whatsapp_handler.correlation_id', left(p_correlation_id, 128), true);
    END IF;
    v_key_id := _api_key_check(p_key_hash, p_channel_id, 'send');
    IF jsonb_typeof(p_requests) IS DISTINCT FROM 'array' OR jsonb_array_length(p_requests) NOT BETWEEN 1 AND 1000 THEN
        RAISE EXCEPTION 'a batch is an array of 1 to 1000 messages' USING ERRCODE = 'WH062',
            HINT = 'Pass [{"to": ..., "type": ..., ..., "idempotency_key": ...}, ...]; split larger batches.';
    END IF;
    FOR v_request, index IN SELECT r, (n - 1)::integer FROM jsonb_array_elements(p_requests) WITH ORDINALITY AS e (r, n) LOOP
        message_id := NULL; duplicate := NULL; error_code := NULL; error := NULL;
        BEGIN
            SELECT s.message_id, s.duplicate INTO message_id, duplicate
            FROM _send_one(v_key_id, p_channel_id,
                           CASE WHEN jsonb_typeof(v_request) = 'object' THEN v_request - 'idempotency_key' ELSE v_request END,
                           CASE WHEN jsonb_typeof(v_request -> 'idempotency_key') = 'string' THEN v_request ->> 'idempotency_key' END) s;
        EXCEPTION WHEN OTHERS THEN
            -- The project's refusals are this element's answer; anything else is the batch's failure.
            IF SQLSTATE NOT LIKE 'WH%' THEN
                RAISE;
            END IF;
            GET STACKED DIAGNOSTICS error_code = RETURNED_SQLSTATE, error = MESSAGE_TEXT;
        END;
        RETURN NEXT;
    END LOOP;
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler.send_messages(bytea, bigint, jsonb, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION whatsapp_handler.send_messages(bytea, bigint, jsonb, text) TO whatsapp_handler_relay;
COMMENT ON FUNCTION whatsapp_handler.send_messages(bytea, bigint, jsonb, text) IS
    'Queues up to 1000 business messages on one channel (p_requests: an array of Meta message objects with "to" and "idempotency_key"), each as send_message would, each on its own: returns one row per element (index from 0, message_id and duplicate, or the project SQLSTATE and message that refused it). Raises WH060/WH061 for the key, WH062 for a batch that is not an array of 1 to 1000.';

COMMIT;
