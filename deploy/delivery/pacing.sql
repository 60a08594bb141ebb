-- Deploy whatsapp_handler:delivery/pacing to pg
-- requires: core/channels jobs/settings core/assert_function
-- WhatsApp's sending limits, held where workers claim (queue/heads, _claim_outbound) so that
-- any number of workers together keep them: a channel's throughput (messages per second)
-- and the pair rate (one business number to one person). Each is a token bucket kept as one
-- timestamp (the generic cell rate algorithm: the theoretical arrival time `tat`, after
-- which the bucket is full): a claim takes a token by moving it on by one step, a message
-- with no token is simply not claimed now. A provider that says "too fast" anyway (Meta
-- 130429, 131056; delivery/provider_errors) pushes the timestamp later.
BEGIN;
SET LOCAL ROLE whatsapp_handler_owner;

INSERT INTO whatsapp_handler.settings (key, value, description) VALUES
    ('pacing.channel.per_second', '80',
     'At most this many messages claimed for sending on one channel in any one second, over every worker together (the Cloud API''s throughput: 80 by default; 1-100000).'),
    ('pacing.channel.burst', '5',
     'How many messages of a channel may go at once after a quiet spell (1 to pacing.channel.per_second). The bucket refills at per_second - burst + 1 a second, so that no second holds more than per_second.'),
    ('pacing.pair.interval', '"6 seconds"',
     'One message to one person on a channel per this interval, sustained (WhatsApp''s pair rate: about one every 6 seconds). "0 seconds" turns the pair pace off. OTP codes are never held by it (they still count).'),
    ('pacing.pair.burst', '3',
     'How many messages may go to one person on a channel at once before pacing.pair.interval applies (1-100).'),
    ('pacing.channel.throttle_pause', '"5 seconds"',
     'How long a channel claims nothing after its provider said it sends too fast (Meta 130429, Twilio 63018; at least 0 seconds).'),
    ('pacing.pair.throttle_pause', '"1 minute"',
     'How long nothing is claimed for one person on a channel after the provider said the pair is over its limit (Meta 131056; at least 0 seconds).');

-- One row per channel that sent. held_* count the heads a claim put back for later (the
-- channel's bucket, or the person's), throttled the provider's "too fast" answers: the
-- worker exports them (worker_pacing). booked_until: the last time a held head of the
-- channel was put back to, so that heads held by later claims queue after it rather than
-- come back together.
CREATE TABLE whatsapp_handler.pacing_channels (
    channel_id      bigint PRIMARY KEY REFERENCES whatsapp_handler.channels (id) ON DELETE CASCADE,
    tat             timestamptz NOT NULL DEFAULT '-infinity',
    booked_until    timestamptz NOT NULL DEFAULT '-infinity',
    held_channel    bigint NOT NULL DEFAULT 0,
    held_pair       bigint NOT NULL DEFAULT 0,
    throttled       bigint NOT NULL DEFAULT 0,
    throttled_until timestamptz
);
COMMENT ON TABLE whatsapp_handler.pacing_channels IS
    'Each channel''s throughput bucket (tat: when it is full again, less its burst), the time its held messages are put back to, and its pacing counters. Written by the claim and by worker_failed; read by worker_pacing.';

-- One row per person and channel written to lately; worker_pacing forgets the idle ones.
CREATE TABLE whatsapp_handler.pacing_pairs (
    channel_id bigint NOT NULL,
    user_id    bigint NOT NULL,
    tat        timestamptz NOT NULL,
    PRIMARY KEY (channel_id, user_id)
);
COMMENT ON TABLE whatsapp_handler.pacing_pairs IS
    'Each (channel, person) pair''s bucket: tat, when the pair may take a whole burst again. Rows idle for an hour are deleted by worker_pacing.';

-- The settings as the buckets use them, each checked. A claim reads them once.
CREATE FUNCTION whatsapp_handler._pacing(OUT channel_step interval, OUT channel_slack interval,
                                         OUT pair_step interval, OUT pair_slack interval,
                                         OUT channel_pause interval, OUT pair_pause interval)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
DECLARE
    v_per_second integer := _setting_integer('pacing.channel.per_second', 1, 100000);
    v_burst      integer := _setting_integer('pacing.channel.burst', 1, 100000);
    v_pair_burst integer := _setting_integer('pacing.pair.burst', 1, 100);
BEGIN
    IF v_burst > v_per_second THEN
        RAISE EXCEPTION 'setting pacing.channel.burst (%) is above pacing.channel.per_second (%)', v_burst, v_per_second
            USING ERRCODE = 'WH075',
                  HINT = 'UPDATE whatsapp_handler.settings SET value = ''5'' WHERE key = ''pacing.channel.burst'' (at most pacing.channel.per_second).';
    END IF;
    -- A burst of b then a steady rate of r never puts more than b + r - 1 in one second: the rate
    -- is per_second - burst + 1 so that every second (not only clock seconds) holds per_second.
    channel_step := interval '1 second' / (v_per_second - v_burst + 1);
    channel_slack := channel_step * (v_burst - 1);
    pair_step := _setting_interval('pacing.pair.interval', interval '0');
    pair_slack := pair_step * (v_pair_burst - 1);
    channel_pause := _setting_interval('pacing.channel.throttle_pause', interval '0');
    pair_pause := _setting_interval('pacing.pair.throttle_pause', interval '0');
    IF pair_step IS NULL OR channel_pause IS NULL OR pair_pause IS NULL THEN
        RAISE EXCEPTION 'a pacing interval setting is null' USING ERRCODE = 'WH020',
            HINT = 'Set pacing.pair.interval, pacing.channel.throttle_pause and pacing.pair.throttle_pause to intervals ("0 seconds" for none).';
    END IF;
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler._pacing() FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler._pacing() IS
    'Internal: the pacing settings as the buckets use them: the channel''s step (one token) and slack (its burst less one, in time), the pair''s step and slack, and the two throttle pauses. Raises WH011/WH020 for a missing or malformed setting, WH075 when pacing.channel.burst is above pacing.channel.per_second.';

-- A provider's "too fast for this channel": no claim on it until the pause is over.
CREATE FUNCTION whatsapp_handler._throttle_channel(p_channel_id bigint)
RETURNS timestamptz
LANGUAGE plpgsql
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
DECLARE
    v_pace  record := _pacing();
    v_until timestamptz := clock_timestamp() + v_pace.channel_pause;
BEGIN
    IF NOT EXISTS (SELECT FROM channels WHERE id = p_channel_id) THEN
        RETURN v_until;
    END IF;
    INSERT INTO pacing_channels AS b (channel_id, tat, throttled, throttled_until)
    VALUES (p_channel_id, v_until + v_pace.channel_slack, 1, v_until)
    ON CONFLICT (channel_id) DO UPDATE
    SET tat = greatest(b.tat, excluded.tat), throttled = b.throttled + 1,
        throttled_until = greatest(b.throttled_until, excluded.throttled_until);
    RETURN v_until;
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler._throttle_channel(bigint) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler._throttle_channel(bigint) IS
    'Internal: empties the channel''s bucket for setting pacing.channel.throttle_pause (the provider said it sends too fast) and counts it; returns when the channel may send again. Raises WH011/WH020/WH075 for a bad pacing setting.';

-- A provider's "too many to this person": nothing for them on the channel until the pause is over.
CREATE FUNCTION whatsapp_handler._throttle_pair(p_channel_id bigint, p_user_id bigint)
RETURNS timestamptz
LANGUAGE plpgsql
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
DECLARE
    v_pace  record := _pacing();
    v_until timestamptz := clock_timestamp() + v_pace.pair_pause;
BEGIN
    IF p_channel_id IS NULL OR p_user_id IS NULL THEN
        RETURN v_until;
    END IF;
    INSERT INTO pacing_pairs AS p (channel_id, user_id, tat) VALUES (p_channel_id, p_user_id, v_until + v_pace.pair_slack)
    ON CONFLICT (channel_id, user_id) DO UPDATE SET tat = greatest(p.tat, excluded.tat);
    UPDATE pacing_channels SET throttled = throttled + 1 WHERE channel_id = p_channel_id;
    RETURN v_until;
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler._throttle_pair(bigint, bigint) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler._throttle_pair(bigint, bigint) IS
    'Internal: empties the (channel, person) bucket for setting pacing.pair.throttle_pause (the provider said the pair is over its limit) and counts it on the channel; returns when the person may be written to again. Raises WH011/WH020/WH075 for a bad pacing setting.';

-- The worker's gauges, read every few seconds; the read also forgets the pairs idle for an
-- hour (their bucket is full again: a missing row means the same), so the table stays the
-- size of the last hour's recipients.
-- A claim that took less than it asked for may have held paced messages back to their turn
-- (a channel's next token is 1/per_second away): the worker waits until the next of them
-- becomes visible, rather than its whole poll interval, so that a paced channel is served at
-- its pace (bench/RESULTS.md: at the default 0.5 s poll, a paced channel got 10 a second per
-- worker). pgmq's index on vt makes this one index probe.
CREATE FUNCTION whatsapp_handler.worker_next_visible()
RETURNS double precision
LANGUAGE sql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
    -- The time as a subquery's value: clock_timestamp() itself is volatile and cannot bound the
    -- index scan, which then read every visible row before the first waiting one (34 ms with
    -- 400,000 visible, 0.04 ms bounded; bench/RESULTS.md, "Paced backlog").
    SELECT extract(epoch FROM min(vt) - clock_timestamp())::double precision FROM pgmq.q_outbound
    WHERE vt > (SELECT clock_timestamp())
$$;
REVOKE ALL ON FUNCTION whatsapp_handler.worker_next_visible() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION whatsapp_handler.worker_next_visible() TO whatsapp_handler_worker;
COMMENT ON FUNCTION whatsapp_handler.worker_next_visible() IS
    'Seconds until the next outbound message not visible yet becomes visible (one held back to its turn by the pacing, a retry''s backoff, another worker''s claim), NULL when there is none: how long the worker may wait before its next claim. Messages visible now but not claimable (behind a person''s earlier message) do not count, or the worker would poll without rest. Raises nothing.';

CREATE FUNCTION whatsapp_handler.worker_pacing()
RETURNS TABLE (channel_id bigint, held_channel bigint, held_pair bigint, throttled bigint, backlog_seconds double precision)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    v_now timestamptz := clock_timestamp();
BEGIN
    -- A setting every claim would refuse fails this read too: the worker's gauge shows it.
    PERFORM _pacing();
    DELETE FROM pacing_pairs WHERE tat < v_now - interval '1 hour';
    RETURN QUERY
    SELECT b.channel_id, b.held_channel, b.held_pair, b.throttled,
           extract(epoch FROM greatest(b.booked_until, b.throttled_until, v_now) - v_now)::double precision
    FROM pacing_channels b ORDER BY b.channel_id;
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler.worker_pacing() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION whatsapp_handler.worker_pacing() TO whatsapp_handler_worker;
COMMENT ON FUNCTION whatsapp_handler.worker_pacing() IS
    'Each paced channel''s counters: messages held back by its throughput cap (held_channel) and by the pair rate (held_pair) since it first sent, the provider''s throttling answers (throttled), and backlog_seconds, how far ahead its held messages (or a throttle) reach. Forgets the pair buckets idle for an hour. Raises WH011/WH020/WH075 for a bad pacing setting (which stops every claim too).';

COMMIT;
