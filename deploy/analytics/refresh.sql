-- Deploy whatsapp_handler:analytics/refresh to pg
-- requires: analytics/summaries_policy analytics/user_keys jobs/settings messages/messages messages/status_events otp/challenges conversation/conversations analytics/onboarded messages/status_pricing analytics/delivery_costs
-- job_analytics_refresh: recounts the analytics summaries (docs/analytics.md). Each run
-- recounts the days since now() - analytics.refresh_lookback (messages, OTP codes,
-- delivery, active users; and the weeks and months those days fall in), and the users
-- and funnel in full; the first run, with empty summaries, recounts everything.
-- Reworked after v1.0.0: counts onboarded users (users.onboarded_at) under the names
-- analytics/onboarded gave the summaries, and recounts the cost and failures of delivery
-- (analytics/delivery_costs). Only the function: the setting
-- analytics.refresh_lookback the released script inserted is there, maybe set by a DBA.
BEGIN;
SET LOCAL ROLE whatsapp_handler_owner;

CREATE OR REPLACE FUNCTION whatsapp_handler.job_analytics_refresh(p_from timestamptz DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, whatsapp_handler, pg_temp
SET "TimeZone" = 'UTC'
AS $$
DECLARE
    v_started timestamptz;
    v_day     timestamptz;
    v_week    timestamptz;
    v_month   timestamptz;
    v_added   bigint;
BEGIN
    -- One refresh at a time; a second waits for the first, then recounts.
    PERFORM pg_advisory_xact_lock(hashtext('whatsapp_handler.job_analytics_refresh'));
    v_started := clock_timestamp();
    -- A start before any data means everything; near the timestamp range's start, date_trunc('week') would fall off it.
    v_day := date_trunc('day', coalesce(CASE WHEN p_from < '0001-01-01 UTC' THEN '-infinity' ELSE p_from END,
        CASE WHEN EXISTS (SELECT FROM analytics_refreshes) THEN now() - _setting_interval('analytics.refresh_lookback', interval '1 day')
             ELSE '-infinity' END));
    v_week := date_trunc('week', v_day);
    v_month := date_trunc('month', v_day);

    -- Users, per conversation: changed rows updated, new ones added (the key is computed
    -- once per row), erased users anonymised but kept for the counts.
    UPDATE analytics_users a
    SET user_key = CASE WHEN s.erased THEN NULL ELSE a.user_key END, country_code = s.country_code,
        first_contact_on = s.first_contact_on, terms_accepted_on = s.terms_accepted_on, verified_on = s.verified_on,
        onboarded_on = s.onboarded_on, last_active_on = s.last_active_on, erased = s.erased
    FROM (SELECT c.user_id, c.channel_id, u.erased_at IS NOT NULL AS erased, _country_code(u.phone) AS country_code,
                 c.created_at::date AS first_contact_on, u.terms_accepted_at::date AS terms_accepted_on,
                 u.verified_at::date AS verified_on, u.onboarded_at::date AS onboarded_on,
                 u.last_active_at::date AS last_active_on
          FROM conversations c JOIN users u ON u.id = c.user_id) s
    WHERE a.user_id = s.user_id AND a.channel_id = s.channel_id
      AND (a.country_code, a.first_contact_on, a.terms_accepted_on, a.verified_on, a.onboarded_on, a.last_active_on, a.erased)
          IS DISTINCT FROM (s.country_code, s.first_contact_on, s.terms_accepted_on, s.verified_on, s.onboarded_on,
                            s.last_active_on, s.erased);
    INSERT INTO analytics_users (user_id, channel_id, user_key, country_code, first_contact_on, terms_accepted_on,
                                 verified_on, onboarded_on, last_active_on, erased)
    SELECT c.user_id, c.channel_id, CASE WHEN u.erased_at IS NULL THEN _user_key(u.id) END, _country_code(u.phone),
           c.created_at::date, u.terms_accepted_at::date, u.verified_at::date, u.onboarded_at::date,
           u.last_active_at::date, u.erased_at IS NOT NULL
    FROM conversations c JOIN users u ON u.id = c.user_id
    WHERE NOT EXISTS (SELECT FROM analytics_users a WHERE a.user_id = c.user_id AND a.channel_id = c.channel_id);
    -- After a large load (the first run) the statistics would still say the table is empty,
    -- and the next run's UPDATE would join it by nested loops: analyse it now.
    GET DIAGNOSTICS v_added = ROW_COUNT;
    IF v_added > 1000 THEN
        ANALYZE analytics_users;
    END IF;

    -- Funnel and onboarded users, in full from analytics_users (one row per conversation).
    INSERT INTO analytics_funnel_daily AS t (day, channel_id, first_contacts, terms_accepted, verified, onboarded)
    SELECT first_contact_on, channel_id, count(*), count(terms_accepted_on), count(verified_on), count(onboarded_on)
    FROM analytics_users GROUP BY 1, 2
    ON CONFLICT (day, channel_id) DO UPDATE
        SET first_contacts = EXCLUDED.first_contacts, terms_accepted = EXCLUDED.terms_accepted,
            verified = EXCLUDED.verified, onboarded = EXCLUDED.onboarded
        WHERE (t.first_contacts, t.terms_accepted, t.verified, t.onboarded)
              IS DISTINCT FROM (EXCLUDED.first_contacts, EXCLUDED.terms_accepted, EXCLUDED.verified, EXCLUDED.onboarded);
    INSERT INTO analytics_onboarded_daily AS t (day, channel_id, onboarded)
    SELECT onboarded_on, channel_id, count(*)
    FROM (SELECT DISTINCT ON (user_id) user_id, channel_id, onboarded_on FROM analytics_users
          WHERE onboarded_on IS NOT NULL ORDER BY user_id, first_contact_on, channel_id) f
    GROUP BY 1, 2
    ON CONFLICT (day, channel_id) DO UPDATE SET onboarded = EXCLUDED.onboarded
        WHERE t.onboarded <> EXCLUDED.onboarded;

    -- OTP codes: the challenges are deleted a day after they resolve, so counts only grow.
    INSERT INTO analytics_otp_daily AS t (day, channel_id, requested, verified, failed_attempts, locked, expired, superseded)
    SELECT created_at::date, channel_id, count(*), count(*) FILTER (WHERE status = 'verified'), sum(failed_attempts),
           count(*) FILTER (WHERE status = 'locked'), count(*) FILTER (WHERE status = 'expired'),
           count(*) FILTER (WHERE status = 'superseded')
    FROM otp_challenges WHERE created_at >= v_day GROUP BY 1, 2
    ON CONFLICT (day, channel_id) DO UPDATE
        SET requested = greatest(t.requested, EXCLUDED.requested), verified = greatest(t.verified, EXCLUDED.verified),
            failed_attempts = greatest(t.failed_attempts, EXCLUDED.failed_attempts), locked = greatest(t.locked, EXCLUDED.locked),
            expired = greatest(t.expired, EXCLUDED.expired), superseded = greatest(t.superseded, EXCLUDED.superseded);

    -- Messages per day: retention and erasure delete messages, not what was counted.
    INSERT INTO analytics_messages_daily AS t (day, channel_id, direction, message_type, messages)
    SELECT created_at::date, channel_id, direction::text, message_type, count(*)
    FROM messages WHERE created_at >= v_day GROUP BY 1, 2, 3, 4
    ON CONFLICT (day, channel_id, direction, message_type) DO UPDATE
        SET messages = greatest(t.messages, EXCLUDED.messages) WHERE EXCLUDED.messages > t.messages;

    -- Delivery, from the statuses as reported (an hour's slack for the providers' clocks);
    -- a latency is left out when the later status carries an earlier time (clock skew);
    -- a recount smaller than the stored one (retention took statuses) is not kept.
    INSERT INTO analytics_delivery_daily AS t (day, channel_id, sent, delivered, read, failed,
        sent_to_delivered_p50, sent_to_delivered_p90, sent_to_delivered_p99,
        delivered_to_read_p50, delivered_to_read_p90, delivered_to_read_p99, sent_to_read_p50)
    SELECT day, channel_id, sent, delivered, read, failed, std[1], std[2], std[3], dtr[1], dtr[2], dtr[3], str
    FROM (
        SELECT sent_at::date AS day, channel_id, count(*) AS sent, count(delivered_at) AS delivered,
               count(read_at) AS read, count(*) FILTER (WHERE failed) AS failed,
               percentile_cont(ARRAY[0.5, 0.9, 0.99]) WITHIN GROUP (ORDER BY extract(epoch FROM delivered_at - sent_at))
                   FILTER (WHERE delivered_at >= sent_at) AS std,
               percentile_cont(ARRAY[0.5, 0.9, 0.99]) WITHIN GROUP (ORDER BY extract(epoch FROM read_at - delivered_at))
                   FILTER (WHERE read_at >= delivered_at) AS dtr,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM read_at - sent_at)) FILTER (WHERE read_at >= sent_at) AS str
        FROM (SELECT channel_id, provider_message_id,
                     min(occurred_at) FILTER (WHERE status = 'sent') AS sent_at,
                     min(occurred_at) FILTER (WHERE status = 'delivered') AS delivered_at,
                     min(occurred_at) FILTER (WHERE status = 'read') AS read_at,
                     bool_or(status = 'failed') AS failed
              FROM message_status_events WHERE received_at >= v_day - interval '1 hour'
              GROUP BY channel_id, provider_message_id) m
        WHERE sent_at >= v_day
        GROUP BY 1, 2
    ) d
    ON CONFLICT (day, channel_id) DO UPDATE
        SET sent = EXCLUDED.sent, delivered = EXCLUDED.delivered, read = EXCLUDED.read, failed = EXCLUDED.failed,
            sent_to_delivered_p50 = EXCLUDED.sent_to_delivered_p50, sent_to_delivered_p90 = EXCLUDED.sent_to_delivered_p90,
            sent_to_delivered_p99 = EXCLUDED.sent_to_delivered_p99, delivered_to_read_p50 = EXCLUDED.delivered_to_read_p50,
            delivered_to_read_p90 = EXCLUDED.delivered_to_read_p90, delivered_to_read_p99 = EXCLUDED.delivered_to_read_p99,
            sent_to_read_p50 = EXCLUDED.sent_to_read_p50
        WHERE EXCLUDED.sent >= t.sent;

    -- Cost and failures: a day's rows are replaced by its recount (a message moves from a
    -- failure's row to the delivered ones when a delivery outranks the failure), unless the
    -- recount is smaller than what was counted (retention took statuses).
    DELETE FROM analytics_delivery_costs_daily t
    USING (SELECT r.day, r.channel_id, sum(r.messages) AS messages FROM _delivery_costs(v_day) r GROUP BY 1, 2) r
    WHERE t.day = r.day AND t.channel_id = r.channel_id
      AND r.messages >= (SELECT sum(c.messages) FROM analytics_delivery_costs_daily c
                         WHERE c.day = r.day AND c.channel_id = r.channel_id);
    INSERT INTO analytics_delivery_costs_daily (day, channel_id, category, error_code, messages, billable, failed)
    SELECT r.day, r.channel_id, r.category, r.error_code, r.messages, r.billable, r.failed FROM _delivery_costs(v_day) r
    WHERE NOT EXISTS (SELECT FROM analytics_delivery_costs_daily c WHERE c.day = r.day AND c.channel_id = r.channel_id);

    -- Active users: the days, and the weeks and months they fall in, recounted whole.
    INSERT INTO analytics_active_users AS t (period, period_start, channel_id, users)
    SELECT p.period, p.period_start, m.channel_id, count(DISTINCT m.user_id)
    FROM messages m
    CROSS JOIN LATERAL (VALUES ('day', m.created_at::date, v_day),
                               ('week', date_trunc('week', m.created_at)::date, v_week),
                               ('month', date_trunc('month', m.created_at)::date, v_month)) p(period, period_start, since)
    WHERE m.direction = 'inbound' AND m.user_id IS NOT NULL AND m.created_at >= v_month AND p.period_start >= p.since
    GROUP BY 1, 2, 3
    ON CONFLICT (period, period_start, channel_id) DO UPDATE
        SET users = EXCLUDED.users WHERE EXCLUDED.users > t.users;

    INSERT INTO analytics_refreshes AS t (id, refreshed_at, covered_from, duration)
    VALUES (true, now(), v_day, clock_timestamp() - v_started)
    ON CONFLICT (id) DO UPDATE SET refreshed_at = EXCLUDED.refreshed_at, covered_from = EXCLUDED.covered_from,
                                   duration = EXCLUDED.duration;
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler.job_analytics_refresh(timestamptz) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler.job_analytics_refresh(timestamptz) IS
    'pg_cron (job analytics_refresh, every 10 minutes): recounts the analytics summaries behind the refreshed views of schema analytics: users and funnel in full; messages, OTP codes, delivery and active users from p_from (default now() - analytics.refresh_lookback, or everything on the first run) at UTC day boundaries, with the weeks and months those days fall in. Counts of rows since deleted (retention, erasure) are kept. Returns nothing. Raises WH011 or WH020 when analytics.refresh_lookback is missing or not an interval of at least a day.';

COMMIT;
