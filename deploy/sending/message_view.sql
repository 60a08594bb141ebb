-- Deploy whatsapp_handler:sending/message_view to pg
-- requires: sending/api_keys messages/messages messages/status_events messages/status_pricing queue/heads queue/dead_letters
-- GET /v1/messages/{id}: what became of a message the business sent. The provider's word
-- (each status in order, with its errors and pricing) and the worker's (still waiting, being
-- retried after an error, or dead-lettered with the reason), so that a send refused by the
-- provider before it had an id is not a bare "failed". One answer for a message that does
-- not exist and one on a channel the key may not read, so that ids tell a stranger nothing.
BEGIN;
SET LOCAL ROLE whatsapp_handler_owner;

-- The worker's side: waiting (attempts so far and the last error), or dead-lettered. Found
-- through the person's queue group (q_outbound_group_idx), never by scanning the queue; the
-- dead letters, few and an operator's to fix, by their group too.
CREATE FUNCTION whatsapp_handler._message_delivery(p_message_id bigint, p_user_id bigint)
RETURNS jsonb
LANGUAGE sql STABLE
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
    SELECT coalesce(
        (SELECT jsonb_strip_nulls(jsonb_build_object(
                    'state', CASE WHEN q.headers ? 'last_error' THEN 'retrying' ELSE 'waiting' END,
                    'attempts', coalesce((q.headers ->> 'attempts')::integer, 0),
                    'next_attempt_at', q.vt, 'last_error', q.headers -> 'last_error'))
         FROM pgmq.q_outbound q
         WHERE q.headers ->> 'x-pgmq-group' = 'user:' || p_user_id AND q.message ->> 'message_id' = p_message_id::text
         LIMIT 1),
        (SELECT jsonb_strip_nulls(jsonb_build_object(
                    'state', 'dead_lettered', 'reason', d.message ->> 'reason', 'error', d.message -> 'error',
                    'attempts', (d.message ->> 'attempts')::integer, 'dead_lettered_at', d.message -> 'dead_lettered_at'))
         FROM pgmq.q_outbound_dlq d
         WHERE d.headers ->> 'x-pgmq-group' = 'user:' || p_user_id AND d.message #>> '{message,message_id}' = p_message_id::text
         ORDER BY d.msg_id DESC
         LIMIT 1))
$$;
REVOKE ALL ON FUNCTION whatsapp_handler._message_delivery(bigint, bigint) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler._message_delivery(bigint, bigint) IS
    'Internal: the worker''s side of outbound message p_message_id of person p_user_id: {state waiting or retrying, attempts, next_attempt_at, last_error} while it is queued, {state dead_lettered, reason, error, attempts, dead_lettered_at} while a dead letter holds it, NULL otherwise (sent, or its dead letter replayed or purged). Raises nothing.';

CREATE FUNCTION whatsapp_handler.message_view(p_key_hash bytea, p_message_id bigint)
RETURNS jsonb
LANGUAGE plpgsql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
DECLARE
    v_key     api_keys;
    v_message messages;
BEGIN
    SELECT * INTO v_key FROM api_keys WHERE key_hash = p_key_hash AND revoked_at IS NULL;
    IF NOT FOUND THEN
        PERFORM _api_key_check(p_key_hash, NULL, 'read');
    END IF;
    SELECT * INTO v_message FROM messages
    WHERE id = p_message_id AND direction = 'outbound' AND channel_id = ANY (v_key.channel_ids) AND 'read' = ANY (v_key.scopes);
    IF NOT FOUND THEN
        RAISE EXCEPTION 'unknown message %', coalesce(p_message_id::text, 'NULL') USING ERRCODE = 'WH070',
            HINT = 'Ask with the id POST /v1/messages returned and a key with scope read on its channel.';
    END IF;
    RETURN jsonb_strip_nulls(jsonb_build_object(
        'id', v_message.id, 'channel_id', v_message.channel_id, 'type', v_message.message_type,
        'status', v_message.status, 'status_at', v_message.status_at, 'created_at', v_message.created_at,
        'provider_message_id', v_message.provider_message_id,
        'delivery', CASE WHEN v_message.user_id IS NOT NULL THEN _message_delivery(v_message.id, v_message.user_id) END))
        || jsonb_build_object('statuses', coalesce(
               (SELECT jsonb_agg(jsonb_strip_nulls(jsonb_build_object('status', s.status, 'occurred_at', s.occurred_at,
                                                                      'errors', s.errors, 'pricing', s.pricing))
                                 ORDER BY s.occurred_at, s.id)
                FROM message_status_events s
                WHERE s.channel_id = v_message.channel_id AND s.provider_message_id = v_message.provider_message_id),
               '[]'));
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler.message_view(bytea, bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION whatsapp_handler.message_view(bytea, bigint) TO whatsapp_handler_relay;
COMMENT ON FUNCTION whatsapp_handler.message_view(bytea, bigint) IS
    'GET /v1/messages/{id}: an outbound message on a channel the key (SHA-256 p_key_hash, scope read) covers: id, channel_id, type, status, status_at, created_at, provider_message_id (once the provider accepted it), delivery (the worker''s side while queued or dead-lettered: _message_delivery) and statuses, each status the provider reported in order with its errors and pricing. Raises WH060 unknown or revoked key, WH070 no such message on the key''s channels.';

COMMIT;
