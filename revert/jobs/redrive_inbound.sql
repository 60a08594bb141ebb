-- Revert whatsapp_handler:jobs/redrive_inbound from pg
-- Puts back redrive_inbound as v1.0.0 released it (deploy/jobs/redrive_inbound@v1.0.0.sql).
BEGIN;
SET LOCAL ROLE whatsapp_handler_owner;

CREATE OR REPLACE FUNCTION whatsapp_handler.redrive_inbound(p_limit integer DEFAULT 100, p_msg_ids bigint[] DEFAULT NULL)
RETURNS jsonb
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
DECLARE
    v_max      integer := _setting_integer('redrive.inbound.max_attempts', 1, 1000);
    v_base     interval := _setting_interval('redrive.inbound.backoff');
    v_cap      interval := _setting_interval('redrive.inbound.backoff_max');
    v_cid      text := current_setting('whatsapp_handler.correlation_id', true);
    v_dead     record;
    v_event_id bigint;
    v_received timestamptz;
    v_provider provider;
    v_payload  jsonb;
    v_counts   jsonb;
    v_attempts integer;
    v_parked   boolean;
    v_sqlstate text;
    v_error    text;
    v_outcome  text;
    v_results  jsonb := '[]';
    v_seen     bigint[] := '{}';
BEGIN
    IF p_limit IS NULL OR p_limit NOT BETWEEN 1 AND 10000 OR cardinality(p_msg_ids) > 10000 THEN
        RAISE EXCEPTION 'a re-drive takes 1 to 10000 dead letters (limit %, ids %)', p_limit, cardinality(p_msg_ids)
            USING ERRCODE = 'WH024', HINT = 'Pass p_limit from 1 to 10000, and at most 10000 msg_ids.';
    END IF;
    -- Visible and not parked, or the ones named; locked (queue/inbound_dlq).
    FOR v_dead IN SELECT d.msg_id, d.message FROM _inbound_letters_due(p_limit, p_msg_ids) d LOOP
        v_seen := v_seen || v_dead.msg_id;
        v_attempts := CASE WHEN jsonb_typeof(v_dead.message -> 'attempts') = 'number'
                           THEN (v_dead.message ->> 'attempts')::numeric::integer ELSE 0 END;
        v_parked := coalesce(v_dead.message -> 'parked' = 'true'::jsonb, false);
        v_event_id := NULL;
        BEGIN
            SELECT w.id, w.received_at, w.provider, w.payload INTO v_event_id, v_received, v_provider, v_payload
            FROM webhook_events w
            WHERE w.id = (v_dead.message ->> 'webhook_event_id')::bigint
              AND w.received_at = (v_dead.message ->> 'received_at')::timestamptz;
        EXCEPTION WHEN data_exception THEN
            v_event_id := NULL;  -- a dead letter not of our making: nothing to re-run
        END;
        IF v_event_id IS NULL THEN
            -- The raw event is gone (its partition dropped, or erased): nothing can be
            -- re-run. The dead letter is archived, so it stays visible for a week.
            PERFORM _archive_inbound_letter(v_dead.msg_id);
            v_results := v_results || jsonb_build_object('msg_id', v_dead.msg_id, 'result', 'gone',
                'webhook_event_id', v_dead.message -> 'webhook_event_id');
            CONTINUE;
        END IF;

        PERFORM set_config('whatsapp_handler.correlation_id', coalesce(v_dead.message ->> 'correlation_id', ''), true);
        BEGIN
            IF v_payload IS NULL THEN
                -- Kept raw only (ingest_raw): nothing to normalise, ever. Parked at once, not retried.
                RAISE EXCEPTION 'webhook event % is kept raw only: its body is not JSON', v_event_id
                    USING ERRCODE = 'WH045', HINT = 'Read webhook_events.raw and its note; purge the dead letter once dealt with.';
            END IF;
            v_counts := _normalise(v_provider, v_payload, v_event_id);
            v_outcome := CASE WHEN v_counts ->> 'outcome' = 'stored' THEN 'stored' ELSE 'processed' END;
            UPDATE webhook_events SET outcome = v_outcome, error = NULL
            WHERE id = v_event_id AND received_at = v_received;
            PERFORM dlq_purge('inbound_dlq', ARRAY[v_dead.msg_id]);
            v_results := v_results || jsonb_build_object('msg_id', v_dead.msg_id, 'result', 'redriven',
                'webhook_event_id', v_event_id, 'outcome', v_outcome);
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS v_sqlstate = RETURNED_SQLSTATE, v_error = MESSAGE_TEXT;
            v_attempts := v_attempts + 1;
            v_parked := v_parked OR v_attempts >= v_max OR v_sqlstate = 'WH045';
            PERFORM _mark_inbound_letter(v_dead.msg_id,
                jsonb_build_object('sqlstate', v_sqlstate, 'error', left(v_error, 500), 'attempts', v_attempts,
                                   'last_attempt_at', clock_timestamp(), 'parked', v_parked),
                -- Backoff: base, 2 x base, 4 x base ... up to the cap. A parked letter stays
                -- visible (for a person); the job skips it by its mark.
                CASE WHEN v_parked THEN interval '0' ELSE least(v_base * power(2, least(v_attempts - 1, 30)), v_cap) END);
            v_results := v_results || jsonb_build_object('msg_id', v_dead.msg_id,
                'result', CASE WHEN v_parked THEN 'parked' ELSE 'failed' END,
                'webhook_event_id', v_event_id, 'attempts', v_attempts, 'sqlstate', v_sqlstate, 'error', left(v_error, 500));
        END;
    END LOOP;
    PERFORM set_config('whatsapp_handler.correlation_id', coalesce(v_cid, ''), true);

    RETURN jsonb_build_object(
        'redriven', (SELECT count(*) FROM jsonb_array_elements(v_results) r WHERE r ->> 'result' = 'redriven'),
        'failed', (SELECT count(*) FROM jsonb_array_elements(v_results) r WHERE r ->> 'result' = 'failed'),
        'parked', (SELECT count(*) FROM jsonb_array_elements(v_results) r WHERE r ->> 'result' = 'parked'),
        'gone', (SELECT count(*) FROM jsonb_array_elements(v_results) r WHERE r ->> 'result' = 'gone'),
        'not_found', to_jsonb(ARRAY(SELECT DISTINCT i FROM unnest(p_msg_ids) i WHERE i <> ALL (v_seen) ORDER BY i)),
        'results', v_results);
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler.redrive_inbound(integer, bigint[]) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler.redrive_inbound(integer, bigint[]) IS
    'Re-drives inbound dead letters (pgmq queue inbound_dlq; cron job whatsapp_handler.redrive_inbound; `whatsapp-handler dlq replay`). Without p_msg_ids: up to p_limit visible, unparked dead letters, oldest first; with p_msg_ids: exactly those (not p_limit, not backoff, parked too). Each re-runs its stored webhook''s normaliser in a savepoint: on success the webhook is marked processed (or stored) and the dead letter deleted; on failure the dead letter records sqlstate, error, attempts and last_attempt_at and becomes visible again after redrive.inbound.backoff doubled per attempt (at most redrive.inbound.backoff_max), and at redrive.inbound.max_attempts it is marked parked (kept for a person, skipped by the job). A dead letter whose raw webhook is gone is archived; one whose webhook was kept raw only (its body is not JSON, WH045) is parked at its first attempt. Locked dead letters are skipped. Returns {redriven, failed, parked, gone, not_found: [msg_ids asked for but not found or locked], results: [{msg_id, result: redriven|failed|parked|gone, webhook_event_id, outcome | attempts, sqlstate, error}]}. Raises WH024 for p_limit outside 1-10000 or more than 10000 msg_ids, WH011 or WH020 for a missing or malformed setting.';

COMMIT;
