-- Deploy whatsapp_handler:ingest/success_rate to pg
-- requires: ingest/webhook_events queue/inbound_dlq jobs/jobs core/channels analytics/analyst_channels analytics/assert_view
-- The share of webhooks processed without a dead letter, per provider and channel, over the
-- last hour and day (docs/ingestion.md#success-rate), for /metrics, doctor and the analysts.
--
-- A webhook counts as failed while webhook_events says failed: its dead letter waits, or was
-- parked or purged. A re-drive that succeeds marks it processed (jobs/redrive_inbound) and it
-- counts as a success from then on; the relay's whatsapp_webhook_requests_total{outcome}
-- keeps the first answer.
--
-- Nothing is added to ingestion (no index, no trigger on webhook_events): a job counts each
-- minute's webhooks once they are in, into webhook_minutes, and /metrics sums at most
-- 1,440 rows per provider and channel. The job finds a minute's rows through the primary
-- key's id: webhook_minute_marks keeps the id sequence's value at each run, and a webhook
-- received after a mark was taken has a higher id (it is numbered within the transaction
-- whose start is its received_at). Each minute is counted twice, the second time a minute
-- after it ended, for the transactions that committed late. A minute of the day with more
-- failures than dead letters still waiting is counted again within its ids, so that a
-- re-drive shows.
BEGIN;
SET LOCAL ROLE whatsapp_handler_owner;

CREATE TABLE whatsapp_handler.webhook_minutes (
    minute     timestamptz NOT NULL,
    provider   whatsapp_handler.provider NOT NULL,
    channel_id bigint,
    webhooks   integer NOT NULL,
    failed     integer NOT NULL,
    first_id   bigint NOT NULL,
    last_id    bigint NOT NULL,
    CONSTRAINT webhook_minutes_key UNIQUE NULLS NOT DISTINCT (minute, provider, channel_id)
);
COMMENT ON TABLE whatsapp_handler.webhook_minutes IS 'Webhooks per minute received, provider and channel (NULL: unknown), and how many of them are failed now; counted by job_webhook_minutes, kept two days. first_id and last_id bound the ids counted.';

CREATE TABLE whatsapp_handler.webhook_minute_marks (
    at         timestamptz PRIMARY KEY,
    last_id    bigint NOT NULL,
    counted_to timestamptz NOT NULL
);
COMMENT ON TABLE whatsapp_handler.webhook_minute_marks IS 'One row per run of job_webhook_minutes, kept two days: the id sequence''s value read before at (every webhook received after at has a higher id), and the minute the run counted up to (excluded).';

CREATE TABLE whatsapp_handler.analytics_webhooks_daily (
    day        date NOT NULL,
    provider   whatsapp_handler.provider NOT NULL,
    channel_id bigint,
    webhooks   integer NOT NULL,
    failed     integer NOT NULL,
    CONSTRAINT analytics_webhooks_daily_key UNIQUE NULLS NOT DISTINCT (day, provider, channel_id)
);
COMMENT ON TABLE whatsapp_handler.analytics_webhooks_daily IS 'Webhooks per UTC day, provider and channel, and how many are failed (re-drives counted until the day is more than 25 hours past); from webhook_minutes, by job_webhook_minutes.';
ALTER TABLE whatsapp_handler.analytics_webhooks_daily ENABLE ROW LEVEL SECURITY;
ALTER TABLE whatsapp_handler.analytics_webhooks_daily FORCE ROW LEVEL SECURITY;
CREATE POLICY analytics_webhooks_daily_channels ON whatsapp_handler.analytics_webhooks_daily
    USING (CASE WHEN channel_id IS NULL THEN (SELECT whatsapp_handler._sees_all_channels())
                ELSE channel_id = ANY ((SELECT whatsapp_handler._visible_channels())::bigint[]) END);
COMMENT ON POLICY analytics_webhooks_daily_channels ON whatsapp_handler.analytics_webhooks_daily IS 'Rows of the channels the current user sees (_visible_channels); rows of no known channel only to those who see all channels (_sees_all_channels).';

CREATE FUNCTION whatsapp_handler.job_webhook_minutes()
RETURNS jsonb
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, whatsapp_handler, pg_temp
SET "TimeZone" = 'UTC'
AS $$
DECLARE
    v_mark    bigint;
    v_at      timestamptz;
    v_to      timestamptz := date_trunc('minute', now());
    v_day     timestamptz := date_trunc('day', now() - interval '25 hours');
    v_from    timestamptz;
    v_floor   bigint;
    v_counted integer;
    v_checked integer;
BEGIN
    -- One run at a time; a second waits for the first, then counts.
    PERFORM pg_advisory_xact_lock(hashtext('whatsapp_handler.job_webhook_minutes'));
    -- The sequence first, the time after: a transaction that starts after v_at numbers its
    -- webhooks after v_mark.
    SELECT CASE WHEN s.is_called THEN s.last_value ELSE 0 END INTO v_mark FROM webhook_events_id_seq s;
    v_at := clock_timestamp();
    SELECT greatest(max(m.counted_to) - interval '1 minute', v_day) INTO v_from FROM webhook_minute_marks m;
    v_from := coalesce(v_from, v_day);
    v_floor := coalesce((SELECT max(m.last_id) FROM webhook_minute_marks m WHERE m.at <= v_from), 0);

    DELETE FROM webhook_minutes WHERE minute >= v_from AND minute < v_to;
    INSERT INTO webhook_minutes (minute, provider, channel_id, webhooks, failed, first_id, last_id)
    SELECT date_trunc('minute', w.received_at), w.provider, w.channel_id, count(*),
           count(*) FILTER (WHERE w.outcome = 'failed'), min(w.id), max(w.id)
    FROM webhook_events w
    WHERE w.id > v_floor AND w.received_at >= v_from AND w.received_at < v_to
    GROUP BY 1, 2, 3;
    GET DIAGNOSTICS v_counted = ROW_COUNT;

    -- Failures re-driven since their minute was counted. A webhook stops being failed only
    -- when a re-drive succeeds, which deletes its dead letter: a minute is counted again
    -- (within its ids) only when it has more failures than dead letters still waiting.
    -- (The inbound dead-letter queue is small; read as analytics.dead_letters reads it.)
    BEGIN
        WITH waiting AS (
            SELECT date_trunc('minute', (q.message ->> 'received_at')::timestamptz) AS minute,
                   q.message ->> 'provider' AS provider, coalesce((q.message ->> 'channel_id')::bigint, 0) AS channel,
                   count(*) AS letters
            FROM pgmq.q_inbound_dlq q
            WHERE q.message ? 'webhook_event_id' AND q.message ? 'received_at'
            GROUP BY 1, 2, 3
        ), stale AS (
            SELECT m.minute, min(m.first_id) AS first_id, max(m.last_id) AS last_id
            FROM webhook_minutes m
            -- Joined on equalities (a hash join): channel ids are positive, 0 stands for none.
            LEFT JOIN waiting l ON l.minute = m.minute AND l.provider = m.provider::text
                               AND l.channel = coalesce(m.channel_id, 0)
            WHERE m.failed > coalesce(l.letters, 0) AND m.failed > 0 AND m.minute >= v_day AND m.minute < v_from
            GROUP BY m.minute
        ), recount AS (
            SELECT s.minute, w.provider, w.channel_id, count(*) FILTER (WHERE w.outcome = 'failed') AS failed
            FROM stale s
            JOIN webhook_events w ON w.id BETWEEN s.first_id AND s.last_id
                                 AND w.received_at >= s.minute AND w.received_at < s.minute + interval '1 minute'
            GROUP BY 1, 2, 3
        )
        UPDATE webhook_minutes m SET failed = r.failed
        FROM recount r
        WHERE m.minute = r.minute AND m.provider = r.provider AND m.channel_id IS NOT DISTINCT FROM r.channel_id
          AND m.failed <> r.failed;
    EXCEPTION WHEN data_exception THEN
        -- A dead letter not of ingest's making (a received_at that is no time): every minute
        -- with failures is counted again.
        UPDATE webhook_minutes m
        SET failed = (SELECT count(*) FROM webhook_events w
                      WHERE w.id BETWEEN m.first_id AND m.last_id
                        AND w.received_at >= m.minute AND w.received_at < m.minute + interval '1 minute'
                        AND w.provider = m.provider AND w.channel_id IS NOT DISTINCT FROM m.channel_id
                        AND w.outcome = 'failed')
        WHERE m.failed > 0 AND m.minute >= v_day AND m.minute < v_from;
    END;
    GET DIAGNOSTICS v_checked = ROW_COUNT;

    -- The days still moving, from their minutes; a smaller recount (minutes missed while
    -- the job was stopped) does not replace a day.
    INSERT INTO analytics_webhooks_daily AS t (day, provider, channel_id, webhooks, failed)
    SELECT m.minute::date, m.provider, m.channel_id, sum(m.webhooks), sum(m.failed)
    FROM webhook_minutes m WHERE m.minute >= v_day
    GROUP BY 1, 2, 3
    ON CONFLICT ON CONSTRAINT analytics_webhooks_daily_key DO UPDATE
        SET webhooks = EXCLUDED.webhooks, failed = EXCLUDED.failed
        WHERE EXCLUDED.webhooks >= t.webhooks AND (t.webhooks, t.failed) IS DISTINCT FROM (EXCLUDED.webhooks, EXCLUDED.failed);

    DELETE FROM webhook_minutes WHERE minute < date_trunc('day', v_to) - interval '2 days';
    DELETE FROM webhook_minute_marks WHERE at < v_to - interval '2 days';
    INSERT INTO webhook_minute_marks (at, last_id, counted_to) VALUES (v_at, v_mark, v_to)
    ON CONFLICT (at) DO NOTHING;
    RETURN jsonb_build_object('counted_from', v_from, 'counted_to', v_to, 'minute_rows', v_counted,
                              'failures_rechecked', v_checked);
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler.job_webhook_minutes() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION whatsapp_handler.job_webhook_minutes() TO whatsapp_handler_cron;
COMMENT ON FUNCTION whatsapp_handler.job_webhook_minutes() IS
    'Counts webhooks per minute, provider and channel (cron job whatsapp_handler.webhook_minutes, every minute): the minutes since the last run''s, the one before it again (late commits), up to the current minute (excluded), at most from the start of the day 25 hours back; counts again the failures of the minutes since then that have more of them than inbound dead letters waiting (re-drives), and the days since then into analytics_webhooks_daily; drops minutes and marks older than two days. Returns {counted_from, counted_to, minute_rows, failures_rechecked}. Raises nothing.';

CREATE FUNCTION whatsapp_handler.webhook_success_rate()
RETURNS TABLE (span text, provider text, channel_id bigint, webhooks bigint, failed bigint, success_ratio double precision,
               counted_to timestamptz)
LANGUAGE sql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
    SELECT s.span, m.provider::text, m.channel_id, sum(m.webhooks)::bigint, sum(m.failed)::bigint,
           1 - sum(m.failed)::double precision / sum(m.webhooks), c.counted_to
    FROM (SELECT k.counted_to FROM webhook_minute_marks k ORDER BY k.at DESC LIMIT 1) c
    CROSS JOIN (VALUES ('1h', interval '1 hour'), ('24h', interval '24 hours')) s(span, length)
    JOIN webhook_minutes m ON m.minute >= c.counted_to - s.length AND m.minute < c.counted_to
    GROUP BY s.span, m.provider, m.channel_id, c.counted_to
    HAVING sum(m.webhooks) > 0
    ORDER BY 1, 2, 3
$$;
REVOKE ALL ON FUNCTION whatsapp_handler.webhook_success_rate() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION whatsapp_handler.webhook_success_rate() TO whatsapp_handler_relay;
COMMENT ON FUNCTION whatsapp_handler.webhook_success_rate() IS
    'For /metrics and doctor: per span (1h, 24h), provider and channel (NULL: unknown) with webhooks in it, the webhooks received in the span up to counted_to (the minute job_webhook_minutes last counted up to, excluded), how many are failed now (dead-lettered and not re-driven), and the share not failed. No row before the job''s first run. Raises nothing.';

CREATE VIEW analytics.webhook_success_daily WITH (security_barrier = true) AS
SELECT day, provider::text AS provider, channel_id, webhooks, failed,
       round(1 - failed::numeric / nullif(webhooks, 0), 6) AS success_ratio
FROM whatsapp_handler.analytics_webhooks_daily;
COMMENT ON VIEW analytics.webhook_success_daily IS 'REFRESHED every minute. Webhooks per UTC day, provider and channel, how many could not be processed (dead-lettered, not re-driven), and the share that were. Rows of no known channel only for analysts of all channels.';
COMMENT ON COLUMN analytics.webhook_success_daily.day IS 'UTC day the webhooks were received.';
COMMENT ON COLUMN analytics.webhook_success_daily.provider IS 'meta, twilio or evolution.';
COMMENT ON COLUMN analytics.webhook_success_daily.channel_id IS 'The channel; NULL when the webhook named none the service knows.';
COMMENT ON COLUMN analytics.webhook_success_daily.webhooks IS 'Webhooks received.';
COMMENT ON COLUMN analytics.webhook_success_daily.failed IS 'Of them, failed: dead-lettered and not re-driven (a re-drive within about a day counts as processed).';
COMMENT ON COLUMN analytics.webhook_success_daily.success_ratio IS '1 - failed / webhooks.';
GRANT SELECT ON analytics.webhook_success_daily TO whatsapp_handler_analyst;

RESET ROLE;
-- The jobs' table belongs to the deploying superuser (jobs/jobs).
INSERT INTO whatsapp_handler.jobs (name, function, schedule, description) VALUES
    ('webhook_minutes', 'job_webhook_minutes', '* * * * *',
     'Counts webhooks per minute, provider and channel, and failures still failed, for the success rate (webhook_success_rate, analytics.webhook_success_daily).');

COMMIT;
