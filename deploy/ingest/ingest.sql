-- Deploy whatsapp_handler:ingest/ingest to pg
-- requires: providers/meta providers/twilio providers/evolution ingest/webhook_events queue/inbound_dlq core/correlation_id conversation/keywords core/e164 users/activity outbox/event_envelope messages/record_inbound
-- The relay's one call per webhook. The raw body is stored first; normalising it
-- runs in a savepoint, so content that cannot be understood (or a bug) leaves the
-- raw event committed with a dead letter pointing at it, and the provider gets its
-- 200 (a retry would only bring the same body again).
-- Every function on this path is plpgsql or an inlinable SQL helper: a SQL function
-- that is not inlined is planned again on each call, which costs more than its work.
BEGIN;
SET LOCAL ROLE whatsapp_handler_owner;

CREATE FUNCTION whatsapp_handler._normalise(p_provider whatsapp_handler.provider, p_payload jsonb, p_webhook_event_id bigint)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
BEGIN
    RETURN CASE p_provider
        WHEN 'meta' THEN _normalise_meta(p_payload, p_webhook_event_id)
        WHEN 'twilio' THEN _normalise_twilio(p_payload, p_webhook_event_id)
        WHEN 'evolution' THEN _normalise_evolution(p_payload, p_webhook_event_id)
    END;
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler._normalise(whatsapp_handler.provider, jsonb, bigint) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler._normalise(whatsapp_handler.provider, jsonb, bigint) IS
    'Internal: the provider''s normaliser for a stored webhook body; returns its counts. Raises what the normaliser raises.';

-- The channel a webhook is stored under: each provider's routing, in its own change. A
-- Meta body is stored under its first change's number (each change is routed again when
-- normalised). A SQL expression without a search_path, so that it is inlined into _ingest;
-- STABLE, not IMMUTABLE, because an enum's cast to text is only STABLE and would stop
-- the inlining (and a SQL function not inlined is planned again on every call).
CREATE FUNCTION whatsapp_handler._channel_ref(p_provider whatsapp_handler.provider, p_payload jsonb)
RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT CASE p_provider::text
        WHEN 'meta' THEN whatsapp_handler._meta_channel_ref(
            pg_catalog.jsonb_path_query_first(p_payload, '$.entry[0].changes[0].value'))
        WHEN 'twilio' THEN whatsapp_handler._twilio_channel_ref(p_payload)
        WHEN 'evolution' THEN whatsapp_handler._evolution_channel_ref(p_payload)
    END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler._channel_ref(whatsapp_handler.provider, jsonb) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler._channel_ref(whatsapp_handler.provider, jsonb) IS
    'Internal: the channel reference (provider_ref) a webhook body of a provider is for, by that provider''s routing (_meta_channel_ref of the first change, _twilio_channel_ref, _evolution_channel_ref); NULL when the body names none. Raises nothing.';

CREATE FUNCTION whatsapp_handler._ingest(p_provider whatsapp_handler.provider, p_payload jsonb, p_correlation_id text,
                                         p_raw bytea DEFAULT NULL, p_note text DEFAULT NULL)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
DECLARE
    v_id       bigint;
    v_at       timestamptz;
    v_counts   jsonb;
    v_sqlstate text;
    v_error    text;
BEGIN
    IF p_payload IS NULL THEN
        -- Nothing to store and nothing to dead-letter: refused, as no provider sends it.
        RAISE EXCEPTION 'a webhook body is NULL' USING ERRCODE = 'WH008',
            HINT = 'Pass the body as received, as jsonb.';
    END IF;
    PERFORM set_config('whatsapp_handler.correlation_id', coalesce(left(p_correlation_id, 128), ''), true);
    INSERT INTO webhook_events (provider, channel_id, correlation_id, payload, raw, note, outcome)
    VALUES (p_provider,
            (SELECT id FROM channels WHERE provider = p_provider AND provider_ref = _channel_ref(p_provider, p_payload)),
            correlation_id(), p_payload, p_raw, CASE WHEN p_raw IS NOT NULL THEN p_note END, 'processed')
    RETURNING id, received_at INTO v_id, v_at;

    BEGIN
        v_counts := _normalise(p_provider, p_payload, v_id);
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS v_sqlstate = RETURNED_SQLSTATE, v_error = MESSAGE_TEXT;
        UPDATE webhook_events SET outcome = 'failed', error = v_sqlstate || ': ' || left(v_error, 500)
        WHERE id = v_id AND received_at = v_at;
        PERFORM _dead_letter_inbound(
            jsonb_build_object('webhook_event_id', v_id, 'received_at', v_at, 'provider', p_provider,
                               'sqlstate', v_sqlstate, 'error', left(v_error, 500), 'correlation_id', correlation_id()));
        RETURN jsonb_build_object('webhook_event_id', v_id, 'outcome', 'failed',
                                  'messages', 0, 'duplicates', 0, 'statuses', 0, 'registrations', 0);
    END;
    IF v_counts ->> 'outcome' = 'stored' THEN
        UPDATE webhook_events SET outcome = 'stored' WHERE id = v_id AND received_at = v_at;
    END IF;
    RETURN jsonb_build_object('webhook_event_id', v_id, 'outcome', coalesce(v_counts ->> 'outcome', 'processed'))
           || (v_counts - 'outcome');
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler._ingest(whatsapp_handler.provider, jsonb, text, bytea, text) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler._ingest(whatsapp_handler.provider, jsonb, text, bytea, text) IS
    'Internal: stores a raw webhook (with the body as received and a note when the payload was cleaned from it), normalises it in a savepoint, and on any failure marks it failed and queues a dead letter on inbound_dlq. Returns {webhook_event_id, outcome, messages, duplicates, statuses, registrations}. Raises WH008 for a NULL body, otherwise only when the raw event itself cannot be stored.';

CREATE FUNCTION whatsapp_handler.ingest_meta(p_payload jsonb, p_correlation_id text DEFAULT NULL)
RETURNS jsonb LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$ BEGIN RETURN _ingest('meta', p_payload, p_correlation_id); END $$;

CREATE FUNCTION whatsapp_handler.ingest_twilio(p_params jsonb, p_correlation_id text DEFAULT NULL)
RETURNS jsonb LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$ BEGIN RETURN _ingest('twilio', p_params, p_correlation_id); END $$;

CREATE FUNCTION whatsapp_handler.ingest_evolution(p_payload jsonb, p_correlation_id text DEFAULT NULL)
RETURNS jsonb LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$ BEGIN RETURN _ingest('evolution', p_payload, p_correlation_id); END $$;

-- The relay's call for an authenticated body that jsonb would refuse as received: a
-- \u0000, a lone surrogate, bytes that are not UTF-8, a number out of numeric's range, or
-- no JSON at all. The relay cleans what it can and says so in p_note; the body as received
-- is kept in webhook_events.raw either way. A cleaned payload is ingested as any other
-- (the other messages of the body are not lost); a body still not JSON is stored raw,
-- failed, and dead-lettered with WH045, and the provider gets its 200 all the same.
-- The cast runs in a handler that keeps only the error's message: jsonb's own DETAIL and
-- CONTEXT quote the body, and would take it into the server log.
CREATE FUNCTION whatsapp_handler.ingest_raw(p_provider text, p_body bytea, p_payload text, p_note text,
                                            p_correlation_id text DEFAULT NULL)
RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
DECLARE
    v_payload  jsonb;
    v_note     text := left(btrim(p_note), 500);
    v_sqlstate text;
    v_error    text;
    v_id       bigint;
    v_at       timestamptz;
BEGIN
    IF p_provider IS NULL OR p_provider NOT IN ('meta', 'twilio', 'evolution') THEN
        RAISE EXCEPTION 'unknown provider %', coalesce(quote_literal(left(p_provider, 40)), 'NULL')
            USING ERRCODE = 'WH008', HINT = 'The provider is one of meta, twilio, evolution.';
    END IF;
    IF p_body IS NULL OR coalesce(v_note, '') = '' THEN
        RAISE EXCEPTION 'ingest_raw takes the body as received and a note saying what is wrong with it'
            USING ERRCODE = 'WH008', HINT = 'Pass the body''s bytes and a non-empty note; a body jsonb takes as it is goes to ingest_<provider>.';
    END IF;
    IF p_payload IS NOT NULL THEN
        BEGIN
            v_payload := p_payload::jsonb;
        EXCEPTION WHEN data_exception OR program_limit_exceeded THEN
            GET STACKED DIAGNOSTICS v_sqlstate = RETURNED_SQLSTATE, v_error = MESSAGE_TEXT;
            v_note := v_note || '; jsonb refused the cleaned text (' || v_sqlstate || ': ' || left(v_error, 200) || ')';
        END;
    END IF;
    IF v_payload IS NOT NULL THEN
        RETURN _ingest(p_provider::provider, v_payload, p_correlation_id, p_body, v_note);
    END IF;
    PERFORM set_config('whatsapp_handler.correlation_id', coalesce(left(p_correlation_id, 128), ''), true);
    INSERT INTO webhook_events (provider, correlation_id, payload, raw, note, outcome, error)
    VALUES (p_provider::provider, correlation_id(), NULL, p_body, v_note, 'failed', 'WH045: ' || v_note)
    RETURNING id, received_at INTO v_id, v_at;
    PERFORM _dead_letter_inbound(
        jsonb_build_object('webhook_event_id', v_id, 'received_at', v_at, 'provider', p_provider,
                           'sqlstate', 'WH045', 'error', v_note, 'correlation_id', correlation_id()));
    RETURN jsonb_build_object('webhook_event_id', v_id, 'outcome', 'failed',
                              'messages', 0, 'duplicates', 0, 'statuses', 0, 'registrations', 0);
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler.ingest_raw(text, bytea, text, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION whatsapp_handler.ingest_raw(text, bytea, text, text, text) TO whatsapp_handler_relay;
COMMENT ON FUNCTION whatsapp_handler.ingest_raw(text, bytea, text, text, text) IS
    'The relay''s call for an authenticated webhook whose body jsonb refuses as received: p_body is the body as received, p_payload the relay''s cleaned JSON text (NULL when it could make none), p_note what it changed or why the body is not JSON. A payload jsonb takes is ingested as by ingest_<provider>, the event keeping raw and note; otherwise the body is stored raw (payload NULL, outcome failed) and dead-lettered on inbound_dlq with sqlstate WH045. Returns {webhook_event_id, outcome, messages, duplicates, statuses, registrations}. Raises WH008 for an unknown provider, a NULL body or an empty note.';

-- The common case under load, set-based: a Meta body with one text message, no status,
-- from someone whose conversation on the channel is active (or opted out), and no
-- keyword. _converse does nothing for such a message, so a whole batch of them is one
-- statement (the same rows _ingest would write, in the same order) instead of a dozen
-- statements each. Every webhook of a sender with any other kind of webhook in the
-- batch is left to _ingest, so that a sender's webhooks keep their order. Returns each
-- webhook's result, NULL for those left to _ingest. jit is off: the planner cannot
-- know a batch is small, and compiling costs more than running it.
CREATE FUNCTION whatsapp_handler._ingest_meta_texts(p_payloads jsonb[], p_correlation_ids text[])
RETURNS jsonb[]
LANGUAGE plpgsql
SET search_path = pg_catalog, whatsapp_handler, pg_temp
SET jit = off
AS $$
DECLARE
    v_results jsonb[];
BEGIN
    WITH item AS (
        SELECT i, p_payloads[i] AS payload, nullif(left(p_correlation_ids[i], 128), '') AS cid,
               p_payloads[i] #> '{entry,0,changes,0,value}' AS v
        FROM generate_subscripts(p_payloads, 1) i
    ), shaped AS (
        SELECT i, payload, cid, _meta_channel_ref(v) AS ref, v #> '{messages,0}' AS msg,
               payload ->> 'object' = 'whatsapp_business_account'
               AND CASE WHEN jsonb_typeof(payload -> 'entry') = 'array' THEN jsonb_array_length(payload -> 'entry') END = 1
               AND CASE WHEN jsonb_typeof(payload #> '{entry,0,changes}') = 'array'
                        THEN jsonb_array_length(payload #> '{entry,0,changes}') END = 1
               AND payload #>> '{entry,0,changes,0,field}' = 'messages'
               AND CASE WHEN jsonb_typeof(v -> 'messages') = 'array' THEN jsonb_array_length(v -> 'messages') END = 1
               AND coalesce(v -> 'statuses', '[]') = '[]'
               AND v #>> '{messages,0,type}' = 'text'
               AND jsonb_typeof(v #> '{messages,0,text,body}') = 'string'
               AND v #>> '{messages,0,id}' IS NOT NULL
               AND _is_e164('+' || (v #>> '{messages,0,from}'))
               AND NOT _is_keyword(v #>> '{messages,0,text,body}') AS simple
        FROM item
    ), others AS (
        -- Every sender named anywhere in a webhook the fast path does not take.
        SELECT DISTINCT s #>> '{}' AS sender
        FROM shaped, jsonb_path_query(payload, '$.entry[*].changes[*].value.messages[*].from') s
        WHERE NOT coalesce(simple, false)
    ), fast AS (
        SELECT s.i, s.payload, s.cid, l.channel_id, l.user_id, l.conversation_id,
               s.msg ->> 'id' AS provider_message_id, s.msg #>> '{text,body}' AS body, '+' || (s.msg ->> 'from') AS phone,
               nextval('whatsapp_handler.webhook_events_id_seq'::regclass) AS event_id,
               nextval('whatsapp_handler.messages_id_seq'::regclass) AS message_id
        FROM (SELECT * FROM shaped
              WHERE simple AND msg ->> 'from' NOT IN (SELECT sender FROM others WHERE sender IS NOT NULL)
              ORDER BY msg ->> 'from', i OFFSET 0) s
        -- Locked in sender order, as ingest_batch takes the rest; a conversation that
        -- moved meanwhile is checked again after the wait and then left to _ingest.
        CROSS JOIN LATERAL (
            SELECT ch.id AS channel_id, u.id AS user_id, c.id AS conversation_id
            FROM channels ch
            JOIN conversations c ON c.channel_id = ch.id
            JOIN users u ON u.id = c.user_id
            WHERE ch.provider = 'meta' AND ch.provider_ref = s.ref AND u.phone = '+' || (s.msg ->> 'from')
              -- Where the conversation does nothing for the text (a keyword already sent
              -- the sender's every webhook to the loop, through others).
              AND _converse_ignores(c.state, s.msg #>> '{text,body}')
            FOR UPDATE OF c
        ) l
    ), raw AS (
        INSERT INTO webhook_events (id, provider, channel_id, correlation_id, payload, outcome)
        OVERRIDING SYSTEM VALUE
        SELECT event_id, 'meta', channel_id, cid, payload, 'processed' FROM fast
    ), claimed AS (
        -- As in _record_inbound: a message seen before (or twice in this batch) is claimed once.
        INSERT INTO message_keys (channel_id, provider_message_id, message_id, message_created_at)
        SELECT channel_id, provider_message_id, message_id, now() FROM fast ORDER BY phone, i
        ON CONFLICT DO NOTHING
        RETURNING message_id
    ), fresh AS (
        SELECT fast.* FROM fast WHERE message_id IN (SELECT message_id FROM claimed)
    ), stored AS (
        INSERT INTO messages (id, created_at, channel_id, user_id, conversation_id, direction, provider_message_id,
                              message_type, body, status, webhook_event_id, correlation_id)
        OVERRIDING SYSTEM VALUE
        SELECT message_id, now(), channel_id, user_id, conversation_id, 'inbound', provider_message_id,
               'text', body, 'received', event_id, cid
        FROM fresh
    ), touched AS (
        -- The one-by-one path's own parts, given the whole batch: _record_inbound touches
        -- and emits with the same functions. Referenced by the final SELECT, which is
        -- what runs them.
        SELECT _touch_activity(ARRAY(SELECT user_id FROM fresh)) AS n
    ), events AS (
        SELECT count(*) AS n
        FROM _enqueue_outbox(
            ARRAY(SELECT _event_envelope('message.received', user_id,
                                         _message_received(message_id, channel_id, conversation_id, provider_message_id,
                                                           'text', body, NULL, NULL), cid)
                  FROM fresh ORDER BY phone, i),
            ARRAY(SELECT _event_group(user_id) FROM fresh ORDER BY phone, i))
    )
    SELECT array_agg(r.result ORDER BY g.i) INTO v_results
    FROM touched, events, generate_subscripts(p_payloads, 1) g(i)
    LEFT JOIN (
        SELECT i, jsonb_build_object('webhook_event_id', event_id, 'outcome', 'processed',
                   'messages', CASE WHEN new THEN 1 ELSE 0 END, 'duplicates', CASE WHEN new THEN 0 ELSE 1 END,
                   'statuses', 0, 'registrations', 0) AS result
        FROM (SELECT i, event_id, message_id IN (SELECT message_id FROM claimed) AS new FROM fast) f
    ) r ON r.i = g.i;
    RETURN v_results;
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler._ingest_meta_texts(jsonb[], text[]) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler._ingest_meta_texts(jsonb[], text[]) IS
    'Internal: ingests, in one statement, the webhooks of a Meta batch that are one plain text message in an active or opted-out conversation, as _ingest would; returns their results and NULL for the webhooks it leaves to _ingest. Raises what its INSERTs raise (ingest_batch then takes the whole batch one by one).';

-- The relay's call under load: the webhooks that arrived while the previous call ran,
-- in one transaction, each with its own savepoint and result. One commit and one round
-- trip for all of them is what lets ingestion keep up with thousands a second.
CREATE FUNCTION whatsapp_handler.ingest_batch(p_provider text, p_payloads jsonb[], p_correlation_ids text[])
RETURNS jsonb[]
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
DECLARE
    v_results jsonb[] := array_fill(NULL::jsonb, ARRAY[coalesce(cardinality(p_payloads), 0)]);
    v_index   integer;
BEGIN
    IF p_provider IS NULL OR p_provider NOT IN ('meta', 'twilio', 'evolution') THEN
        RAISE EXCEPTION 'unknown provider %', coalesce(p_provider, 'NULL')
            USING ERRCODE = 'WH008', HINT = 'The provider is one of meta, twilio, evolution.';
    END IF;
    IF coalesce(cardinality(p_payloads), 0) > 1000
       OR coalesce(cardinality(p_payloads), 0) <> coalesce(cardinality(p_correlation_ids), 0) THEN
        RAISE EXCEPTION 'a batch holds 0 to 1000 payloads, each with its correlation id'
            USING ERRCODE = 'WH008', HINT = 'Pass two arrays of the same length, at most 1000 long.';
    END IF;
    IF p_provider = 'meta' AND cardinality(p_payloads) > 1 THEN
        BEGIN
            v_results := _ingest_meta_texts(p_payloads, p_correlation_ids);
        EXCEPTION WHEN OTHERS THEN
            -- Whatever went wrong is left to the one-by-one path, which dead-letters it.
            v_results := array_fill(NULL::jsonb, ARRAY[cardinality(p_payloads)]);
        END;
    END IF;
    -- Taken in sender order, so that two batches at once lock conversations in the
    -- same order and cannot deadlock on them; one sender's webhooks keep their order.
    FOR v_index IN
        SELECT i FROM generate_subscripts(p_payloads, 1) i
        ORDER BY coalesce(
            jsonb_path_query_first(p_payloads[i], '$.entry[0].changes[0].value.messages[0].from') #>> '{}',
            p_payloads[i] ->> 'From',
            jsonb_path_query_first(p_payloads[i], '$.data.key.remoteJid') #>> '{}', ''), i
    LOOP
        CONTINUE WHEN v_results[v_index] IS NOT NULL;
        v_results[v_index] := _ingest(p_provider::provider, p_payloads[v_index], p_correlation_ids[v_index]);
    END LOOP;
    RETURN v_results;
END
$$;

REVOKE ALL ON FUNCTION whatsapp_handler.ingest_batch(text, jsonb[], text[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION whatsapp_handler.ingest_batch(text, jsonb[], text[]) TO whatsapp_handler_relay;
COMMENT ON FUNCTION whatsapp_handler.ingest_batch(text, jsonb[], text[]) IS
    'The relay''s call for several verified webhooks of one provider at once: each is ingested as by ingest_<provider> (own savepoint, own dead letter), all in this one transaction. Returns their results in the order given. Raises WH008 for an unknown provider, arrays of different lengths, more than 1000 payloads, or a NULL payload.';

REVOKE ALL ON FUNCTION whatsapp_handler.ingest_meta(jsonb, text), whatsapp_handler.ingest_twilio(jsonb, text),
                       whatsapp_handler.ingest_evolution(jsonb, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION whatsapp_handler.ingest_meta(jsonb, text), whatsapp_handler.ingest_twilio(jsonb, text),
                          whatsapp_handler.ingest_evolution(jsonb, text) TO whatsapp_handler_relay;
COMMENT ON FUNCTION whatsapp_handler.ingest_meta(jsonb, text) IS
    'The relay''s one call for a verified Meta webhook body: stores it, records its messages and statuses once each, runs the conversations, queues replies and events, all in this transaction. Returns {webhook_event_id, outcome: processed|failed, messages, duplicates, statuses, registrations}. Content it cannot understand is dead-lettered (inbound_dlq), not raised; raises WH008 for a NULL body.';
COMMENT ON FUNCTION whatsapp_handler.ingest_twilio(jsonb, text) IS
    'The relay''s one call for a verified Twilio webhook (form fields as a JSON object of strings): as ingest_meta.';
COMMENT ON FUNCTION whatsapp_handler.ingest_evolution(jsonb, text) IS
    'The relay''s one call for an authenticated Evolution API webhook: as ingest_meta; events other than MESSAGES_UPSERT and MESSAGES_UPDATE are kept raw (outcome stored).';

COMMIT;
