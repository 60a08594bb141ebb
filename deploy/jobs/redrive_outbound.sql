-- Deploy whatsapp_handler:jobs/redrive_outbound to pg
-- Reworked after v1.0.0: the re-drive's report (each letter's result, now with its channel) is
-- kept in the dead-letter history (queue/dead_letter_history) rather than thrown away by pg_cron,
-- and a re-driven or erased letter is deleted by _delete_dead_letters, not dlq_purge (whose own
-- history row is an operator's purge). The released function is deploy/jobs/redrive_outbound@v1.0.0.sql.
-- requires: queue/dead_letter_history
BEGIN;
SET LOCAL ROLE whatsapp_handler_owner;

CREATE OR REPLACE FUNCTION whatsapp_handler.redrive_outbound(p_limit integer DEFAULT 100, p_msg_ids bigint[] DEFAULT NULL)
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
    v_channel  bigint;
    v_results  jsonb := '[]';
    v_seen     bigint[] := '{}';
    v_report   jsonb;
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
        v_channel := _letter_channel_id('outbound_dlq', v_dead.message);
        v_message := v_dead.message -> 'message';
        v_user_id := CASE WHEN jsonb_typeof(v_message -> 'user_id') = 'number' THEN (v_message ->> 'user_id')::bigint END;

        IF jsonb_typeof(v_message) IS DISTINCT FROM 'object' OR v_message ->> 'kind' = 'otp' THEN
            -- Forced only (the job never picks these): nothing to send again.
            v_results := v_results || jsonb_build_object('msg_id', v_dead.msg_id, 'result', 'refused',
                'channel_id', v_channel, 'reason', CASE WHEN v_message ->> 'kind' = 'otp'
                               THEN 'an OTP code is not kept once dead-lettered: the person requests a new one'
                               ELSE 'the dead letter holds no outbound message' END);
        ELSIF EXISTS (SELECT FROM users WHERE id = v_user_id AND erased_at IS NOT NULL) THEN
            -- Erased since: the letter holds their address and text, and must not be sent.
            PERFORM _delete_dead_letters('outbound_dlq', ARRAY[v_dead.msg_id]);
            v_results := v_results || jsonb_build_object('msg_id', v_dead.msg_id, 'result', 'erased',
                'channel_id', v_channel);
        ELSIF p_msg_ids IS NULL AND v_dead.redrives >= v_max THEN
            PERFORM _park_outbound_letter(v_dead.msg_id);
            v_results := v_results || jsonb_build_object('msg_id', v_dead.msg_id, 'result', 'parked',
                'channel_id', v_channel, 'redrives', v_dead.redrives);
        ELSE
            -- Back on outbound as the worker's message, with the same per-user group, so
            -- that the worker still sends one message per user at a time.
            v_new_id := _enqueue_outbound(v_message || jsonb_build_object('redrives', v_dead.redrives + 1),
                                          coalesce(v_dead.headers ->> 'x-pgmq-group', 'user:' || v_user_id));
            PERFORM _delete_dead_letters('outbound_dlq', ARRAY[v_dead.msg_id]);
            v_results := v_results || jsonb_build_object('msg_id', v_dead.msg_id, 'result', 'redriven',
                'channel_id', v_channel, 'outbound_msg_id', v_new_id, 'redrives', v_dead.redrives + 1);
        END IF;
    END LOOP;

    v_report := jsonb_build_object(
        'redriven', (SELECT count(*) FROM jsonb_array_elements(v_results) r WHERE r ->> 'result' = 'redriven'),
        'parked', (SELECT count(*) FROM jsonb_array_elements(v_results) r WHERE r ->> 'result' = 'parked'),
        'refused', (SELECT count(*) FROM jsonb_array_elements(v_results) r WHERE r ->> 'result' = 'refused'),
        'erased', (SELECT count(*) FROM jsonb_array_elements(v_results) r WHERE r ->> 'result' = 'erased'),
        'not_found', to_jsonb(ARRAY(SELECT DISTINCT i FROM unnest(p_msg_ids) i WHERE i <> ALL (v_seen) ORDER BY i)),
        'results', v_results);
    -- The report is kept (a job's return value pg_cron throws away): the job's sweep is a
    -- redrive, letters named by an operator a replay.
    PERFORM _dead_letter_log(CASE WHEN p_msg_ids IS NULL THEN 'redrive' ELSE 'replay' END, 'outbound_dlq',
                             'redrive_outbound', v_report);
    RETURN v_report;
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler.redrive_outbound(integer, bigint[]) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler.redrive_outbound(integer, bigint[]) IS
    'Re-drives outbound dead letters (pgmq queue outbound_dlq; cron job whatsapp_handler.redrive_outbound; `whatsapp-handler dlq replay`). Without p_msg_ids: up to p_limit dead letters of reason provider_down, not OTP, not parked, at least redrive.outbound.backoff x 2^redrives old (at most redrive.outbound.backoff_max), oldest first; one that has already been re-driven redrive.outbound.max_redrives times is marked parked instead (kept for a person, skipped by the job). With p_msg_ids: exactly those, whatever their reason, age or parking (not p_limit). A re-driven letter''s message goes back on pgmq queue outbound with redrives incremented and its x-pgmq-group header, and the dead letter is deleted; an OTP message is refused (its code is gone); a letter for a user erased since is deleted unsent. Locked dead letters are skipped. Returns {redriven, parked, refused, erased, not_found: [msg_ids asked for but not found or locked], results: [{msg_id, result: redriven|parked|refused|erased, channel_id, outbound_msg_id, redrives, reason}]}; the report is written to the dead-letter history (action redrive without p_msg_ids, replay with them; a park row for the letters parked) with the job or login that called. Raises WH024 for p_limit outside 1-10000 or more than 10000 msg_ids, WH011 or WH020 for a missing or malformed setting.';

COMMIT;
