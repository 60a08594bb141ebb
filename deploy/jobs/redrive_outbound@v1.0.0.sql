-- Deploy whatsapp_handler:jobs/redrive_outbound to pg
-- requires: jobs/settings queue/dead_letters queue/dlq_operators queue/outbound users/users
-- Re-drive of outbound dead letters, the body of the cron job `whatsapp_handler.redrive_outbound`
-- and of `whatsapp-handler dlq replay outbound`. The job takes back only what failed
-- because a provider was down, never an OTP message (its code did not survive the
-- dead-lettering: the person asks for a new one); an operator may force any other.
BEGIN;
SET LOCAL ROLE whatsapp_handler_owner;

CREATE FUNCTION whatsapp_handler.redrive_outbound(p_limit integer DEFAULT 100, p_msg_ids bigint[] DEFAULT NULL)
RETURNS jsonb
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
DECLARE
    v_max      integer := _setting_integer('redrive.outbound.max_redrives', 0, 1000);
    v_base     interval := _setting_interval('redrive.outbound.backoff');
    v_cap      interval := _setting_interval('redrive.outbound.backoff_max');
    v_dead     record;
    v_redrives integer;
    v_message  jsonb;
    v_user_id  bigint;
    v_new_id   bigint;
    v_results  jsonb := '[]';
    v_seen     bigint[] := '{}';
BEGIN
    IF p_limit IS NULL OR p_limit NOT BETWEEN 1 AND 10000 OR cardinality(p_msg_ids) > 10000 THEN
        RAISE EXCEPTION 'a re-drive takes 1 to 10000 dead letters (limit %, ids %)', p_limit, cardinality(p_msg_ids)
            USING ERRCODE = 'WH024', HINT = 'Pass p_limit from 1 to 10000, and at most 10000 msg_ids.';
    END IF;
    -- Due (provider_down, not OTP, not parked, past the backoff) or named; locked
    -- (queue/dead_letters).
    FOR v_dead IN
        SELECT d.msg_id, d.message, d.headers, d.redrives FROM _outbound_letters_due(p_limit, p_msg_ids, v_base, v_cap) d
    LOOP
        v_seen := v_seen || v_dead.msg_id;
        v_message := v_dead.message -> 'message';
        v_user_id := CASE WHEN jsonb_typeof(v_message -> 'user_id') = 'number' THEN (v_message ->> 'user_id')::bigint END;

        IF jsonb_typeof(v_message) IS DISTINCT FROM 'object' OR v_message ->> 'kind' = 'otp' THEN
            -- Forced only (the job never picks these): nothing to send again.
            v_results := v_results || jsonb_build_object('msg_id', v_dead.msg_id, 'result', 'refused',
                'reason', CASE WHEN v_message ->> 'kind' = 'otp'
                               THEN 'an OTP code is not kept once dead-lettered: the person requests a new one'
                               ELSE 'the dead letter holds no outbound message' END);
        ELSIF EXISTS (SELECT FROM users WHERE id = v_user_id AND erased_at IS NOT NULL) THEN
            -- Erased since: the letter holds their address and text, and must not be sent.
            PERFORM dlq_purge('outbound_dlq', ARRAY[v_dead.msg_id]);
            v_results := v_results || jsonb_build_object('msg_id', v_dead.msg_id, 'result', 'erased');
        ELSIF p_msg_ids IS NULL AND v_dead.redrives >= v_max THEN
            PERFORM _park_outbound_letter(v_dead.msg_id);
            v_results := v_results || jsonb_build_object('msg_id', v_dead.msg_id, 'result', 'parked',
                'redrives', v_dead.redrives);
        ELSE
            -- Back on outbound as the worker's message, with the same per-user group, so
            -- that the worker still sends one message per user at a time.
            v_new_id := _enqueue_outbound(v_message || jsonb_build_object('redrives', v_dead.redrives + 1),
                                          coalesce(v_dead.headers ->> 'x-pgmq-group', 'user:' || v_user_id));
            PERFORM dlq_purge('outbound_dlq', ARRAY[v_dead.msg_id]);
            v_results := v_results || jsonb_build_object('msg_id', v_dead.msg_id, 'result', 'redriven',
                'outbound_msg_id', v_new_id, 'redrives', v_dead.redrives + 1);
        END IF;
    END LOOP;

    RETURN jsonb_build_object(
        'redriven', (SELECT count(*) FROM jsonb_array_elements(v_results) r WHERE r ->> 'result' = 'redriven'),
        'parked', (SELECT count(*) FROM jsonb_array_elements(v_results) r WHERE r ->> 'result' = 'parked'),
        'refused', (SELECT count(*) FROM jsonb_array_elements(v_results) r WHERE r ->> 'result' = 'refused'),
        'erased', (SELECT count(*) FROM jsonb_array_elements(v_results) r WHERE r ->> 'result' = 'erased'),
        'not_found', to_jsonb(ARRAY(SELECT DISTINCT i FROM unnest(p_msg_ids) i WHERE i <> ALL (v_seen) ORDER BY i)),
        'results', v_results);
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler.redrive_outbound(integer, bigint[]) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler.redrive_outbound(integer, bigint[]) IS
    'Re-drives outbound dead letters (pgmq queue outbound_dlq; cron job whatsapp_handler.redrive_outbound; `whatsapp-handler dlq replay`). Without p_msg_ids: up to p_limit dead letters of reason provider_down, not OTP, not parked, at least redrive.outbound.backoff x 2^redrives old (at most redrive.outbound.backoff_max), oldest first; one that has already been re-driven redrive.outbound.max_redrives times is marked parked instead (kept for a person, skipped by the job). With p_msg_ids: exactly those, whatever their reason, age or parking (not p_limit). A re-driven letter''s message goes back on pgmq queue outbound with redrives incremented and its x-pgmq-group header, and the dead letter is deleted; an OTP message is refused (its code is gone); a letter for a user erased since is deleted unsent. Locked dead letters are skipped. Returns {redriven, parked, refused, erased, not_found: [msg_ids asked for but not found or locked], results: [{msg_id, result: redriven|parked|refused|erased, outbound_msg_id, redrives, reason}]}. Raises WH024 for p_limit outside 1-10000 or more than 10000 msg_ids, WH011 or WH020 for a missing or malformed setting.';

COMMIT;
