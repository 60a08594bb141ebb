-- Deploy whatsapp_handler:delivery/worker to pg
-- Reworked after v1.0.0: worker_sent_batch settles a batch with one lock, one archive and
-- one delete; worker_sent is a batch of one. This is the whole change as it is now, CREATE
-- OR REPLACE over the released functions (deploy/delivery/worker@v1.0.0.sql runs first).
-- requires: queue/outbound queue/heads queue/archive queue/dead_letters messages/status messages/status_order core/channels outbox/event_envelope
-- The delivery worker's whole interface: claim messages from pgmq queue outbound (one
-- per user at a time, so a user's messages go in order), then settle each one: sent,
-- retry later, put back, or dead-letter. The delivery state of a queued message lives
-- in its pgmq headers ({attempts, in_flight, last_error}); its body is left as queued.
BEGIN;
SET LOCAL ROLE whatsapp_handler_owner;

CREATE OR REPLACE FUNCTION whatsapp_handler.worker_channels()
RETURNS TABLE (id bigint, provider whatsapp_handler.provider, provider_ref text)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$ SELECT id, provider, provider_ref FROM channels ORDER BY id $$;

-- Claims the oldest message of up to p_qty users whose message is visible, skipping the
-- channels whose circuit breaker is open. A message whose previous claim was never
-- settled (the worker died while sending it) comes back with in_doubt: the provider
-- may have accepted it.
CREATE OR REPLACE FUNCTION whatsapp_handler.worker_claim(p_qty integer, p_vt_seconds integer, p_skip_channels bigint[] DEFAULT '{}')
RETURNS TABLE (msg_id bigint, attempts integer, in_doubt boolean, message jsonb)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
#variable_conflict use_column
BEGIN
    IF p_qty IS NULL OR p_qty NOT BETWEEN 1 AND 1000 OR p_vt_seconds IS NULL OR p_vt_seconds NOT BETWEEN 1 AND 3600 THEN
        RAISE EXCEPTION 'claim 1 to 1000 messages for 1 to 3600 seconds' USING ERRCODE = 'WH013',
            HINT = 'Pass p_qty between 1 and 1000 and p_vt_seconds between 1 and 3600.';
    END IF;
    -- Only the head of its user's line (queue/heads): a user's messages go in order.
    RETURN QUERY
    SELECT c.msg_id, c.attempts, c.was_in_flight, c.message FROM _claim_outbound(p_qty, p_vt_seconds, p_skip_channels) c;
END
$$;

-- Under load the worker settles its deliveries together: one transaction, one commit, and
-- the queue rows locked, archived and deleted by one statement each (queue/outbound,
-- queue/archive), whatever the batch's size.
CREATE OR REPLACE FUNCTION whatsapp_handler.worker_sent_batch(p_msg_ids bigint[], p_provider_message_ids text[])
RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
DECLARE
    v_row     record;
    v_settled integer := 0;
    v_archive bigint[] := '{}';
    v_otp     bigint[] := '{}';
    v_id      bigint;
    v_at      timestamptz;
    v_channel bigint;
    v_latest  message_status;
BEGIN
    IF coalesce(cardinality(p_msg_ids), 0) <> coalesce(cardinality(p_provider_message_ids), 0)
       OR coalesce(cardinality(p_msg_ids), 0) > 1000 THEN
        RAISE EXCEPTION 'settle 0 to 1000 messages, each with its provider id' USING ERRCODE = 'WH013',
            HINT = 'Pass two arrays of the same length, at most 1000 long.';
    END IF;
    -- Only the messages still queued: another worker settled the rest (a stale outcome).
    FOR v_row IN
        SELECT DISTINCT ON (l.msg_id) l.msg_id, l.message, s.provider_message_id
        FROM _lock_outbound(p_msg_ids) l
        JOIN unnest(p_msg_ids, p_provider_message_ids) WITH ORDINALITY s (msg_id, provider_message_id, n) ON s.msg_id = l.msg_id
        ORDER BY l.msg_id, s.n
    LOOP
        IF v_row.provider_message_id IS NULL OR char_length(v_row.provider_message_id) NOT BETWEEN 1 AND 256 THEN
            RAISE EXCEPTION 'a provider message id has 1 to 256 characters' USING ERRCODE = 'WH013',
                HINT = 'Pass the id from the provider''s answer (Meta messages[0].id, Twilio sid, Evolution key.id).';
        END IF;
        v_settled := v_settled + 1;
        IF v_row.message ->> 'kind' IN ('otp', 'read', 'typing') THEN
            -- An OTP code exists only in this row: deleted, never archived. A read receipt or a
            -- typing indicator (sending/read_receipts) has no message row to record against.
            v_otp := v_otp || v_row.msg_id;
            CONTINUE;
        END IF;
        v_id := (v_row.message ->> 'message_id')::bigint;
        v_at := (v_row.message ->> 'message_created_at')::timestamptz;
        v_channel := (v_row.message ->> 'channel_id')::bigint;
        UPDATE messages SET provider_message_id = v_row.provider_message_id
        WHERE id = v_id AND created_at = v_at AND direction = 'outbound';
        -- The key lets the provider's status webhooks find the message; statuses that came
        -- before it (a fast provider, a slow worker) were kept unattached and join it now.
        INSERT INTO message_keys (channel_id, provider_message_id, message_id, message_created_at)
        VALUES (v_channel, v_row.provider_message_id, v_id, v_at)
        ON CONFLICT DO NOTHING;
        UPDATE message_status_events SET message_id = v_id
        WHERE channel_id = v_channel AND provider_message_id = v_row.provider_message_id AND message_id IS NULL;
        -- The one that ranks last in the status order (messages/status_order's _status_rank:
        -- a failure does not outrank a delivery), not the enum's last.
        SELECT status INTO v_latest FROM message_status_events
        WHERE channel_id = v_channel AND provider_message_id = v_row.provider_message_id
        ORDER BY _status_rank(status) DESC LIMIT 1;
        IF v_latest IS NOT NULL THEN
            PERFORM _advance_status(v_id, v_at, v_latest, now(), v_row.provider_message_id, NULL, v_channel);
        END IF;
        v_archive := v_archive || v_row.msg_id;
    END LOOP;
    PERFORM _delete_outbound(v_otp);
    PERFORM _archive_outbound(v_archive);
    RETURN v_settled;
END
$$;

CREATE OR REPLACE FUNCTION whatsapp_handler.worker_sent(p_msg_id bigint, p_provider_message_id text)
RETURNS boolean
LANGUAGE sql SECURITY DEFINER
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$ SELECT worker_sent_batch(ARRAY[p_msg_id], ARRAY[p_provider_message_id]) = 1 $$;

CREATE OR REPLACE FUNCTION whatsapp_handler.worker_retry(p_msg_id bigint, p_delay_seconds double precision, p_error jsonb)
RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
BEGIN
    IF p_delay_seconds IS NULL OR p_delay_seconds < 0 OR p_delay_seconds > 86400 THEN
        RAISE EXCEPTION 'a retry delay is 0 to 86400 seconds' USING ERRCODE = 'WH013',
            HINT = 'Pass the backoff in seconds.';
    END IF;
    RETURN _retry_outbound(p_msg_id, p_delay_seconds, p_error);
END
$$;

-- Puts a claimed message back untried (its channel's breaker opened meanwhile, or the
-- worker is stopping): the claim does not count as an attempt.
CREATE OR REPLACE FUNCTION whatsapp_handler.worker_release(p_msg_id bigint, p_delay_seconds double precision DEFAULT 0)
RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
BEGIN
    -- NaN compares above every number: refused here rather than as a timestamp out of range.
    IF p_delay_seconds > 86400 THEN
        RAISE EXCEPTION 'a release delay is at most 86400 seconds' USING ERRCODE = 'WH013',
            HINT = 'Pass the breaker''s remaining time in seconds.';
    END IF;
    RETURN _release_outbound(p_msg_id, p_delay_seconds);
END
$$;

CREATE OR REPLACE FUNCTION whatsapp_handler.worker_dead_letter(p_msg_id bigint, p_reason text, p_error jsonb)
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
DECLARE
    v_row  record;
    v_dead bigint;
BEGIN
    IF p_reason IS NULL OR p_reason NOT IN ('rejected', 'attempts_exhausted', 'provider_down', 'in_doubt') THEN
        RAISE EXCEPTION 'unknown dead-letter reason %', coalesce(p_reason, 'NULL') USING ERRCODE = 'WH013',
            HINT = 'The reason is one of rejected, attempts_exhausted, provider_down, in_doubt.';
    END IF;
    SELECT l.message, l.headers INTO v_row FROM _lock_outbound(ARRAY[p_msg_id]) l;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    PERFORM _delete_outbound(ARRAY[p_msg_id]);
    -- An OTP code must not outlive its delivery attempt: the dead letter keeps the rest.
    v_dead := _dead_letter_outbound(
        jsonb_build_object('message', v_row.message - 'code', 'reason', p_reason, 'error', p_error,
                           'attempts', coalesce((v_row.headers ->> 'attempts')::integer, 0),
                           'redrives', coalesce((v_row.message ->> 'redrives')::integer, 0),
                           'queue_msg_id', p_msg_id, 'dead_lettered_at', clock_timestamp()),
        v_row.headers - 'in_flight' - 'attempts' - 'last_error');
    -- Refused for good: the message failed. Otherwise it may still go (re-drive, replay).
    IF p_reason = 'rejected' AND v_row.message ? 'message_id' THEN
        PERFORM _advance_status((v_row.message ->> 'message_id')::bigint, (v_row.message ->> 'message_created_at')::timestamptz,
                                'failed', now(), NULL, p_error, (v_row.message ->> 'channel_id')::bigint);
    END IF;
    RETURN v_dead;
END
$$;

REVOKE ALL ON FUNCTION whatsapp_handler.worker_channels(), whatsapp_handler.worker_claim(integer, integer, bigint[]),
    whatsapp_handler.worker_sent(bigint, text), whatsapp_handler.worker_sent_batch(bigint[], text[]), whatsapp_handler.worker_retry(bigint, double precision, jsonb),
    whatsapp_handler.worker_release(bigint, double precision),
    whatsapp_handler.worker_dead_letter(bigint, text, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION whatsapp_handler.worker_channels(), whatsapp_handler.worker_claim(integer, integer, bigint[]),
    whatsapp_handler.worker_sent(bigint, text), whatsapp_handler.worker_sent_batch(bigint[], text[]), whatsapp_handler.worker_retry(bigint, double precision, jsonb),
    whatsapp_handler.worker_release(bigint, double precision),
    whatsapp_handler.worker_dead_letter(bigint, text, jsonb) TO whatsapp_handler_worker;

COMMENT ON FUNCTION whatsapp_handler.worker_channels() IS
    'The channels (id, provider, provider_ref), for the worker to match its configured credentials. Raises nothing.';
COMMENT ON FUNCTION whatsapp_handler.worker_claim(integer, integer, bigint[]) IS
    'Claims up to p_qty outbound messages for p_vt_seconds, at most one per user (the oldest, and only when it is visible), none of the channels in p_skip_channels; counts the attempt and marks it in flight. Returns (msg_id, attempts, in_doubt, message); in_doubt means a previous claim was never settled, so the provider may already have the message. Raises WH013 for p_qty outside 1-1000 or p_vt_seconds outside 1-3600.';
COMMENT ON FUNCTION whatsapp_handler.worker_sent(bigint, text) IS
    'Settles a delivered message: records the provider''s message id (and any status that arrived before it), then archives the queue message, or deletes it for an OTP code. Returns false when the message was no longer queued (settled by another worker). Raises WH013 for a missing or over-long provider id.';
COMMENT ON FUNCTION whatsapp_handler.worker_sent_batch(bigint[], text[]) IS
    'Settles several delivered messages at once, as worker_sent does each, in queue order; returns how many were still queued. Raises WH013 for arrays of different lengths or longer than 1000, or a missing provider id.';
COMMENT ON FUNCTION whatsapp_handler.worker_retry(bigint, double precision, jsonb) IS
    'Puts a message back for a retry after p_delay_seconds (the backoff), with the error it met. Returns false when it is no longer queued. Raises WH013 for a delay outside 0-86400.';
COMMENT ON FUNCTION whatsapp_handler.worker_release(bigint, double precision) IS
    'Puts a claimed, untried message back after p_delay_seconds (NULL or negative: at once) without counting the attempt. Returns false when it is no longer queued. Raises WH013 for a delay over 86400 seconds (or NaN).';
COMMENT ON FUNCTION whatsapp_handler.worker_dead_letter(bigint, text, jsonb) IS
    'Moves a message to pgmq queue outbound_dlq ({message without any OTP code, reason, error, attempts, redrives, queue_msg_id, dead_lettered_at}); a rejected message is marked failed (message.status_changed). Returns the dead letter''s msg_id, or NULL when the message was no longer queued. Raises WH013 for a reason other than rejected, attempts_exhausted, provider_down, in_doubt.';

COMMIT;
