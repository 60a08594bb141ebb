-- Deploy whatsapp_handler:queue/dead_letter_history to pg
-- requires: queue/dead_letters queue/inbound_dlq queue/dlq_operators jobs/settings jobs/jobs core/roles core/assert_function
-- Dead-letter history: every re-drive, replay and purge of a dead letter leaves a row saying
-- when, by which job or login, which letters and what became of each; a letter the re-drive
-- gives up on (parked) gets a row of its own. The callers (redrive_inbound, redrive_outbound,
-- outbox_dlq_replay, dlq_purge) hand their report to _dead_letter_log, the one writer: it
-- names the actor, and writes the park row. The deletes and locks the callers need go through
-- the functions here too, so that the queue layer stays the only code that knows pgmq's tables.
BEGIN;
SET LOCAL ROLE whatsapp_handler_owner;

INSERT INTO whatsapp_handler.settings (key, value, description) VALUES
    ('retention.dead_letter_history', '"90 days"',
     'Rows of the dead-letter history (re-drives, replays, purges, parked letters) are deleted by the retention job past this (at least 1 day; null keeps them).');

CREATE TABLE whatsapp_handler.dead_letter_history (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    created_at timestamptz NOT NULL DEFAULT now(),
    login      text NOT NULL,
    job        text,
    action     text NOT NULL CONSTRAINT dead_letter_history_action CHECK (action IN ('redrive', 'replay', 'purge', 'park')),
    queue      text NOT NULL CONSTRAINT dead_letter_history_queue CHECK (queue IN ('inbound_dlq', 'outbound_dlq', 'outbox_dlq')),
    msg_ids    bigint[] NOT NULL,
    outcome    jsonb NOT NULL CONSTRAINT dead_letter_history_outcome CHECK (jsonb_typeof(outcome) = 'object')
);
-- Latest first (the CLI, the metrics' last hour, the retention job), and latest first of one queue.
CREATE INDEX dead_letter_history_created_at ON whatsapp_handler.dead_letter_history (created_at);
CREATE INDEX dead_letter_history_queue ON whatsapp_handler.dead_letter_history (queue, id);
COMMENT ON TABLE whatsapp_handler.dead_letter_history IS
    'One row per re-drive run, replay or purge of dead letters that touched or named at least one letter, and one per run that parked letters (docs/queues.md). Written only by _dead_letter_log; read by operators (dlq_history, `whatsapp-handler dlq history`), /metrics (dead_letter_history_metrics) and analytics.dead_letter_history_daily; trimmed by the retention job past retention.dead_letter_history.';
COMMENT ON COLUMN whatsapp_handler.dead_letter_history.created_at IS 'When (the transaction of the call).';
COMMENT ON COLUMN whatsapp_handler.dead_letter_history.login IS 'The login that called (session_user): whatsapp_handler_cron for a pg_cron job, the operator''s login otherwise.';
COMMENT ON COLUMN whatsapp_handler.dead_letter_history.job IS 'The job of whatsapp_handler.jobs that ran the function, when its login is pg_cron''s whatsapp_handler_cron; NULL for a login.';
COMMENT ON COLUMN whatsapp_handler.dead_letter_history.action IS 'redrive (the job''s sweep of due letters), replay (letters named by msg_id), purge (deleted for good), park (letters a re-drive or replay gave up on, also in their run''s row).';
COMMENT ON COLUMN whatsapp_handler.dead_letter_history.queue IS 'inbound_dlq, outbound_dlq or outbox_dlq.';
COMMENT ON COLUMN whatsapp_handler.dead_letter_history.msg_ids IS 'The dead letters acted on, and those named but not found (or locked), by their msg_id in the queue.';
COMMENT ON COLUMN whatsapp_handler.dead_letter_history.outcome IS 'The report of the call: its counts, not_found, and results: one {msg_id, result, channel_id, ...} per letter (redriven, failed, parked, gone, refused, erased, replayed, purged). A park row: {run: id of its run''s row, results}.';

-- The channel a dead letter belongs to, by the layout of its queue (docs/queues.md); NULL
-- when unknown or malformed: the history is written whatever the letter holds.
CREATE FUNCTION whatsapp_handler._letter_channel_id(p_queue text, p_message jsonb)
RETURNS bigint
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
DECLARE
    v_channel jsonb := CASE p_queue WHEN 'inbound_dlq' THEN p_message -> 'channel_id'
                                    WHEN 'outbound_dlq' THEN p_message #> '{message,channel_id}'
                                    WHEN 'outbox_dlq' THEN p_message #> '{event,payload,channel_id}' END;
BEGIN
    IF jsonb_typeof(v_channel) = 'number' AND v_channel::text ~ '^[0-9]{1,18}$' THEN
        RETURN v_channel::text::bigint;
    END IF;
    RETURN NULL;
END
$$;

-- Deletes letters of one queue (NULL: all of it) and says which went: the purge's and the
-- re-drives' one delete. A static statement per queue, as in queue/dlq_operators.
CREATE FUNCTION whatsapp_handler._delete_dead_letters(p_queue text, p_msg_ids bigint[])
RETURNS TABLE (msg_id bigint, channel_id bigint)
LANGUAGE plpgsql
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
#variable_conflict use_column
BEGIN
    CASE _dlq_name(p_queue)
    WHEN 'inbound_dlq' THEN
        RETURN QUERY DELETE FROM pgmq.q_inbound_dlq q WHERE p_msg_ids IS NULL OR q.msg_id = ANY (p_msg_ids)
            RETURNING q.msg_id, _letter_channel_id('inbound_dlq', q.message);
    WHEN 'outbound_dlq' THEN
        RETURN QUERY DELETE FROM pgmq.q_outbound_dlq q WHERE p_msg_ids IS NULL OR q.msg_id = ANY (p_msg_ids)
            RETURNING q.msg_id, _letter_channel_id('outbound_dlq', q.message);
    ELSE
        RETURN QUERY DELETE FROM pgmq.q_outbox_dlq q WHERE p_msg_ids IS NULL OR q.msg_id = ANY (p_msg_ids)
            RETURNING q.msg_id, _letter_channel_id('outbox_dlq', q.message);
    END CASE;
END
$$;

-- Locks the named letters of one queue for the caller's transaction (waiting for another's
-- lock) and says which are there, so that a replay reports exactly what it moved.
CREATE FUNCTION whatsapp_handler._lock_dead_letters(p_queue text, p_msg_ids bigint[])
RETURNS TABLE (msg_id bigint, channel_id bigint)
LANGUAGE plpgsql
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
#variable_conflict use_column
BEGIN
    CASE _dlq_name(p_queue)
    WHEN 'inbound_dlq' THEN
        RETURN QUERY SELECT q.msg_id, _letter_channel_id('inbound_dlq', q.message) FROM pgmq.q_inbound_dlq q
            WHERE q.msg_id = ANY (p_msg_ids) ORDER BY q.msg_id FOR UPDATE;
    WHEN 'outbound_dlq' THEN
        RETURN QUERY SELECT q.msg_id, _letter_channel_id('outbound_dlq', q.message) FROM pgmq.q_outbound_dlq q
            WHERE q.msg_id = ANY (p_msg_ids) ORDER BY q.msg_id FOR UPDATE;
    ELSE
        RETURN QUERY SELECT q.msg_id, _letter_channel_id('outbox_dlq', q.message) FROM pgmq.q_outbox_dlq q
            WHERE q.msg_id = ANY (p_msg_ids) ORDER BY q.msg_id FOR UPDATE;
    END CASE;
END
$$;

-- The one writer of the history. p_function is the SQL function that acted: run by pg_cron's
-- login, the job is the one of whatsapp_handler.jobs that calls it (every job runs as that
-- login, and a job is named for the function it runs: jobs/jobs).
CREATE FUNCTION whatsapp_handler._dead_letter_log(p_action text, p_queue text, p_function text, p_outcome jsonb)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
DECLARE
    v_results jsonb := CASE WHEN jsonb_typeof(p_outcome -> 'results') = 'array' THEN p_outcome -> 'results' ELSE '[]' END;
    v_ids     bigint[];
    v_job     text;
    v_id      bigint;
    v_parked  jsonb;
BEGIN
    v_ids := ARRAY(
        SELECT DISTINCT i FROM (
            SELECT (r ->> 'msg_id')::bigint AS i FROM jsonb_array_elements(v_results) r
            UNION ALL
            SELECT n::text::bigint FROM jsonb_array_elements(
                CASE WHEN jsonb_typeof(p_outcome -> 'not_found') = 'array' THEN p_outcome -> 'not_found' ELSE '[]' END) n
        ) t WHERE i IS NOT NULL ORDER BY i);
    IF cardinality(v_ids) = 0 THEN
        RETURN NULL;  -- a run that found nothing due leaves no row
    END IF;
    IF session_user = 'whatsapp_handler_cron' THEN
        SELECT string_agg(j.name, ',' ORDER BY j.name) INTO v_job FROM jobs j WHERE j.function = p_function;
    END IF;
    INSERT INTO dead_letter_history (login, job, action, queue, msg_ids, outcome)
    VALUES (session_user, v_job, p_action, _dlq_name(p_queue), v_ids, p_outcome)
    RETURNING id INTO v_id;

    -- Given up: nothing more happens to these letters until a person replays or purges them.
    SELECT jsonb_agg(r ORDER BY (r ->> 'msg_id')::bigint) INTO v_parked
    FROM jsonb_array_elements(v_results) r WHERE r ->> 'result' = 'parked';
    IF v_parked IS NOT NULL THEN
        INSERT INTO dead_letter_history (login, job, action, queue, msg_ids, outcome)
        VALUES (session_user, v_job, 'park', p_queue,
                ARRAY(SELECT (r ->> 'msg_id')::bigint FROM jsonb_array_elements(v_parked) r),
                jsonb_build_object('run', v_id, 'parked', jsonb_array_length(v_parked), 'results', v_parked));
    END IF;
    RETURN v_id;
END
$$;

REVOKE ALL ON FUNCTION whatsapp_handler._letter_channel_id(text, jsonb), whatsapp_handler._delete_dead_letters(text, bigint[]),
    whatsapp_handler._lock_dead_letters(text, bigint[]), whatsapp_handler._dead_letter_log(text, text, text, jsonb) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler._letter_channel_id(text, jsonb) IS
    'Internal: the channel id a dead letter of this queue carries (inbound_dlq: channel_id; outbound_dlq: message.channel_id; outbox_dlq: event.payload.channel_id), NULL when absent or not a whole number. Raises nothing.';
COMMENT ON FUNCTION whatsapp_handler._delete_dead_letters(text, bigint[]) IS
    'Internal: deletes these letters of one dead-letter queue (NULL: all of them) and returns (msg_id, channel_id) of each one deleted. Raises WH024 for an unknown queue.';
COMMENT ON FUNCTION whatsapp_handler._lock_dead_letters(text, bigint[]) IS
    'Internal: locks (FOR UPDATE, waiting) these letters of one dead-letter queue for the caller''s transaction and returns (msg_id, channel_id) of those there, by msg_id. Raises WH024 for an unknown queue.';
COMMENT ON FUNCTION whatsapp_handler._dead_letter_log(text, text, text, jsonb) IS
    'Internal: writes the history row of one re-drive, replay or purge (p_action) of p_queue by p_function: the login (session_user), the job of whatsapp_handler.jobs running p_function when that login is whatsapp_handler_cron, the msg_ids of p_outcome''s results and not_found, and p_outcome whole; and, when results hold parked letters, a park row naming them. Writes nothing when p_outcome names no letter. Returns the row''s id, or NULL. Raises WH024 for an unknown queue.';

-- Operators: `whatsapp-handler dlq history`.
CREATE FUNCTION whatsapp_handler.dlq_history(p_queue text DEFAULT NULL, p_limit integer DEFAULT 50)
RETURNS TABLE (id bigint, created_at timestamptz, login text, job text, action text, queue text, msg_ids bigint[],
               outcome jsonb)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
#variable_conflict use_column
BEGIN
    IF p_limit IS NULL OR p_limit NOT BETWEEN 1 AND 10000 THEN
        RAISE EXCEPTION 'a history takes 1 to 10000 rows (limit %)', coalesce(p_limit::text, 'NULL')
            USING ERRCODE = 'WH024', HINT = 'Pass a limit from 1 to 10000.';
    END IF;
    IF p_queue IS NOT NULL THEN
        PERFORM _dlq_name(p_queue);
    END IF;
    RETURN QUERY
    SELECT h.id, h.created_at, h.login, h.job, h.action, h.queue, h.msg_ids, h.outcome
    FROM dead_letter_history h
    WHERE p_queue IS NULL OR h.queue = p_queue
    ORDER BY h.id DESC
    LIMIT p_limit;
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler.dlq_history(text, integer) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler.dlq_history(text, integer) IS
    'Operators (`whatsapp-handler dlq history`): the latest p_limit rows of the dead-letter history, newest first, of one queue or (NULL) all: (id, created_at, login, job, action, queue, msg_ids, outcome). Raises WH024 for an unknown queue or a limit outside 1-10000.';

-- /metrics (the relay's scrape): what the history says of the last hour, per letter.
CREATE FUNCTION whatsapp_handler.dead_letter_history_metrics()
RETURNS TABLE (queue text, action text, result text, letters bigint)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
    SELECT h.queue, h.action, r ->> 'result', count(*)
    FROM dead_letter_history h
    CROSS JOIN LATERAL jsonb_array_elements(
        CASE WHEN jsonb_typeof(h.outcome -> 'results') = 'array' THEN h.outcome -> 'results' ELSE '[]' END) r
    WHERE h.created_at > now() - interval '1 hour'
    GROUP BY 1, 2, 3
    ORDER BY 1, 2, 3
$$;
REVOKE ALL ON FUNCTION whatsapp_handler.dead_letter_history_metrics() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION whatsapp_handler.dead_letter_history_metrics() TO whatsapp_handler_relay;
COMMENT ON FUNCTION whatsapp_handler.dead_letter_history_metrics() IS
    'For /metrics and doctor: dead letters of the history''s rows of the last hour by queue, action (redrive, replay, purge, park) and result (redriven, failed, parked, gone, refused, erased, replayed, purged). Raises nothing.';

COMMIT;
