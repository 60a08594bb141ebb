-- Deploy whatsapp_handler:queue/heads to pg
-- Reworked after v1.0.0: claims plan for 100 rows, not 1000 (ROWS 100), the outbound
-- claim holds the channels' and pairs' pacing (delivery/pacing), the messages behind a
-- waiting head wait with it (_hold_followers), and heads are found in visibility order. This is the whole change as it is now, CREATE OR REPLACE over the released functions
-- (deploy/queue/heads@v1.0.0.sql runs first).
-- requires: queue/outbox queue/outbound core/assert_function delivery/pacing
-- A group's messages go one at a time and in order (x-pgmq-group: one user's replies on
-- outbound, one user's events on outbox): only the head of a group may be claimed, and
-- the message after it waits, visible or not, until the head is settled. This change
-- holds that rule once: the group index of each queue and _heads_<queue>(), made from one
-- template for outbound and outbox, and the claims of worker_claim (_claim_outbound) and
-- outbox_read (_claim_outbox) that hide the heads for their visibility timeout.
BEGIN;
SET LOCAL ROLE whatsapp_handler_owner;

-- One template, one function per queue: pgmq's tables differ by name only, and a static
-- statement is planned once per session where dynamic SQL would be planned on every claim.
DO $do$
DECLARE
    v_queue text;
BEGIN
    FOREACH v_queue IN ARRAY ARRAY['outbound', 'outbox'] LOOP
        EXECUTE format($template$
CREATE OR REPLACE FUNCTION whatsapp_handler._heads_%1$s(p_qty integer, p_skip_channels bigint[] DEFAULT '{}')
RETURNS TABLE (msg_id bigint, headers jsonb)
LANGUAGE plpgsql
-- A claim takes tens to hundreds. Left at the default of 1000 rows, the planner of the
-- claims below hashed the whole queue to join them (a sequential scan per claim).
ROWS 100
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $body$
#variable_conflict use_column
DECLARE
    -- A value, not clock_timestamp() in the query: a volatile call cannot bound an index
    -- scan, and the walk would filter every waiting row out of the vt index one by one.
    v_now timestamptz := clock_timestamp();
BEGIN
    RETURN QUERY
    SELECT q.msg_id, q.headers
    FROM pgmq.q_%1$s q
    WHERE q.vt <= v_now
      AND NOT ((q.message ->> 'channel_id')::bigint = ANY (coalesce(p_skip_channels, '{}')))
      -- Only the head of its group, visible or not: while it is being handled (or waits
      -- for its retry), the group's next message waits behind it. One index probe per
      -- candidate, where pgmq's grouped read aggregates the whole queue each time.
      AND NOT EXISTS (SELECT FROM pgmq.q_%1$s e
                      WHERE e.headers ->> 'x-pgmq-group' = q.headers ->> 'x-pgmq-group' AND e.msg_id < q.msg_id)
    -- Through pgmq's vt index, from the longest visible: the walk stops at p_qty heads and
    -- never touches what waits (a queue held back by its pacing is nearly all waiting). In
    -- msg_id order the planner walked the primary key and filtered out every waiting row.
    ORDER BY q.vt
    LIMIT p_qty
    FOR UPDATE OF q SKIP LOCKED;
END
$body$
$template$, v_queue);
        EXECUTE format('REVOKE ALL ON FUNCTION whatsapp_handler._heads_%s(integer, bigint[]) FROM PUBLIC', v_queue);
        EXECUTE format('COMMENT ON FUNCTION whatsapp_handler._heads_%s(integer, bigint[]) IS %L', v_queue,
            format('Internal: locks and returns (msg_id, headers) of up to p_qty visible messages of pgmq queue %s, '
                   'the longest visible first, each the head of its x-pgmq-group, none whose message.channel_id is in '
                   'p_skip_channels; skips locked ones. The caller claims them in its transaction. Raises nothing.',
                   v_queue));
    END LOOP;
END
$do$;

-- The messages behind an outbound head that waits (put back for its pace, for its retry,
-- for a breaker) wait with it, not past it. Left visible they could not be claimed (only a
-- head may be), yet every claim walked them, one index probe each, before it reached a head:
-- behind a paced channel with a deep backlog, once the heads were put back to their turns,
-- that was the whole queue per claim and the drain fell to about 10 a second
-- (bench/RESULTS.md, "Paced backlog"). Never later than the head: a head settled early
-- (dead-lettered, erased) leaves them waiting at most until its own time. Not behind a head
-- in flight: its settle would leave them waiting out the claim's visibility timeout.
CREATE OR REPLACE FUNCTION whatsapp_handler._hold_followers(p_heads bigint[])
RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, whatsapp_handler, pg_temp
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
    v_count integer;
BEGIN
    UPDATE pgmq.q_outbound f
    SET vt = h.vt
    FROM pgmq.q_outbound h
    WHERE h.msg_id = ANY (p_heads)
      AND f.headers ->> 'x-pgmq-group' = h.headers ->> 'x-pgmq-group' AND f.msg_id > h.msg_id AND f.vt < h.vt;
    GET DIAGNOSTICS v_count = ROW_COUNT;
    RETURN v_count;
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler._hold_followers(bigint[]) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler._hold_followers(bigint[]) IS
    'Internal: moves the visibility of the outbound messages queued behind each of these heads (same x-pgmq-group, later msg_id) up to the head''s own, where it is earlier; returns how many it moved. Raises nothing.';

-- A claim takes the heads and hides them for the reader's visibility timeout, in one
-- statement (set-based: no call per message). The worker's state of an outbound message
-- is in its headers: attempts counts the claims, in_flight marks one not yet settled.
-- Pacing (delivery/pacing) is held here, where every worker claims: a head is claimed only
-- with a token of its channel's bucket and of its (channel, person) bucket. The buckets are
-- row-locked in channel order by the statement that takes their tokens, so that claims of
-- any number of workers take them one after another. A head without a token is put back
-- (its visibility moved) to when its token comes, so that the next claims reach the heads
-- behind it: the person's, or the channel's next free step after those it already put back.
CREATE OR REPLACE FUNCTION whatsapp_handler._claim_outbound(p_qty integer, p_vt_seconds integer, p_skip_channels bigint[] DEFAULT '{}')
RETURNS TABLE (msg_id bigint, attempts integer, was_in_flight boolean, message jsonb)
LANGUAGE plpgsql
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    v_now   timestamptz := clock_timestamp();
    v_pace  record := _pacing();
    v_ids   bigint[];
    v_chan  bigint[];
    v_user  bigint[];
    v_otp   boolean[];
    v_fly   boolean[];
BEGIN
    -- A channel whose bucket is empty is not even looked at.
    SELECT array_agg(h.msg_id ORDER BY h.msg_id), array_agg((q.message ->> 'channel_id')::bigint ORDER BY h.msg_id),
           array_agg((q.message ->> 'user_id')::bigint ORDER BY h.msg_id),
           array_agg(q.message ->> 'kind' IS NOT DISTINCT FROM 'otp' ORDER BY h.msg_id),
           array_agg(coalesce((h.headers ->> 'in_flight')::boolean, false) ORDER BY h.msg_id)
    INTO v_ids, v_chan, v_user, v_otp, v_fly
    FROM _heads_outbound(p_qty, coalesce(p_skip_channels, '{}')
                                || ARRAY(SELECT b.channel_id FROM pacing_channels b WHERE b.tat > v_now + v_pace.channel_slack)) h
    JOIN pgmq.q_outbound q ON q.msg_id = h.msg_id;
    IF v_ids IS NULL THEN
        RETURN;
    END IF;
    INSERT INTO pacing_channels (channel_id)
    SELECT c.id FROM channels c WHERE c.id = ANY (v_chan) ORDER BY c.id
    ON CONFLICT DO NOTHING;

    RETURN QUERY
    WITH bucket AS (
        SELECT b.channel_id, greatest(b.tat, v_now) AS start, greatest(b.booked_until, v_now) AS booked
        FROM pacing_channels b WHERE b.channel_id = ANY (v_chan) ORDER BY b.channel_id FOR UPDATE
    ), head AS (
        -- An OTP code is never held by the pair pace (the person asked for it and waits), but
        -- it takes the pair's token like any message.
        SELECT u.msg_id, u.channel_id, u.user_id, u.fly, p.tat AS pair_tat,
               (u.otp OR p.tat IS NULL OR p.tat <= v_now + v_pace.pair_slack) AS pair_free
        FROM unnest(v_ids, v_chan, v_user, v_otp, v_fly) u (msg_id, channel_id, user_id, otp, fly)
        LEFT JOIN pacing_pairs p ON p.channel_id = u.channel_id AND p.user_id = u.user_id
    ), ranked AS (
        SELECT h.*, b.start, b.booked,
               row_number() OVER (PARTITION BY h.channel_id, h.pair_free ORDER BY h.msg_id) AS n,
               greatest(floor(extract(epoch FROM v_now + v_pace.channel_slack - b.start)
                              / extract(epoch FROM v_pace.channel_step))::bigint + 1, 0) AS room
        FROM head h LEFT JOIN bucket b ON b.channel_id = h.channel_id
    ), decided AS (
        -- A message of a channel the database does not know is not paced: the worker refuses it.
        SELECT r.*, CASE WHEN r.start IS NULL THEN 'take'
                         WHEN NOT r.pair_free THEN 'pair'
                         WHEN r.n <= r.room THEN 'take'
                         ELSE 'channel' END AS fate
        FROM ranked r
    ), per_channel AS (
        SELECT d.channel_id, min(d.start) AS start, min(d.booked) AS booked, min(d.room) AS room,
               count(*) FILTER (WHERE d.fate = 'take') AS taken, count(*) FILTER (WHERE d.fate = 'channel') AS held,
               count(*) FILTER (WHERE d.fate = 'pair') AS held_pair
        FROM decided d WHERE d.start IS NOT NULL GROUP BY d.channel_id
    ), spent AS (
        UPDATE pacing_channels b
        SET tat = c.start + v_pace.channel_step * c.taken,
            booked_until = CASE WHEN c.held = 0 THEN b.booked_until
                                ELSE greatest(c.start + v_pace.channel_step * c.taken - v_pace.channel_slack, c.booked)
                                     + v_pace.channel_step * c.held END,
            held_channel = b.held_channel + c.held, held_pair = b.held_pair + c.held_pair
        FROM per_channel c WHERE b.channel_id = c.channel_id
    ), paired AS (
        INSERT INTO pacing_pairs AS p (channel_id, user_id, tat)
        SELECT d.channel_id, d.user_id, v_now + v_pace.pair_step FROM decided d
        WHERE d.fate = 'take' AND d.start IS NOT NULL AND d.user_id IS NOT NULL
        ON CONFLICT (channel_id, user_id) DO UPDATE SET tat = greatest(p.tat, v_now) + v_pace.pair_step
    ), put_back AS (
        -- Held heads are not claimed: no attempt counted, only their visibility moved.
        UPDATE pgmq.q_outbound q
        SET vt = CASE WHEN d.fate = 'pair' THEN d.pair_tat - v_pace.pair_slack
                      ELSE greatest(d.start + v_pace.channel_step * d.room - v_pace.channel_slack, d.booked)
                           + v_pace.channel_step * (d.n - d.room - 1) END
        FROM decided d WHERE d.fate <> 'take' AND q.msg_id = d.msg_id
    )
    UPDATE pgmq.q_outbound q
    SET vt = clock_timestamp() + make_interval(secs => p_vt_seconds),
        read_ct = q.read_ct + 1,
        -- The time the tokens were taken at: what the buckets' guarantees are about.
        last_read_at = v_now,
        headers = q.headers || jsonb_build_object('in_flight', true,
                                                  'attempts', coalesce((q.headers ->> 'attempts')::integer, 0) + 1)
    FROM decided d
    -- spent, paired and put_back run whole although nothing reads them (data-modifying WITH).
    WHERE d.fate = 'take' AND q.msg_id = d.msg_id
    RETURNING q.msg_id, (q.headers ->> 'attempts')::integer, d.fly, q.message;
    -- The heads put back: those of v_ids the statement above left unread (its claims read at v_now).
    PERFORM _hold_followers(ARRAY(SELECT q.msg_id FROM pgmq.q_outbound q
                                  WHERE q.msg_id = ANY (v_ids) AND q.last_read_at IS DISTINCT FROM v_now));
END
$$;

CREATE OR REPLACE FUNCTION whatsapp_handler._claim_outbox(p_qty integer, p_vt_seconds integer)
RETURNS TABLE (msg_id bigint, read_ct integer, enqueued_at timestamptz, message jsonb)
LANGUAGE plpgsql
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    WITH picked AS (
        SELECT h.msg_id FROM _heads_outbox(p_qty) h
    )
    UPDATE pgmq.q_outbox q
    SET vt = clock_timestamp() + make_interval(secs => p_vt_seconds), read_ct = q.read_ct + 1,
        last_read_at = clock_timestamp()
    FROM picked p
    WHERE q.msg_id = p.msg_id
    RETURNING q.msg_id, q.read_ct, q.enqueued_at, q.message;
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler._claim_outbound(integer, integer, bigint[]),
    whatsapp_handler._claim_outbox(integer, integer) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler._claim_outbound(integer, integer, bigint[]) IS
    'Internal: claims, of the heads _heads_outbound(p_qty, p_skip_channels) returns (none of a channel whose bucket is empty), those with a token of their channel''s and their (channel, person) bucket (delivery/pacing; an OTP code needs only the channel''s), for p_vt_seconds: counts the read and the attempt (header attempts) and marks them in flight. The others are put back untried to when their token comes, counted in pacing_channels, and the messages behind them with them (_hold_followers). Returns (msg_id, attempts, was_in_flight: a previous claim was never settled, message). Raises WH011/WH020/WH075 for a bad pacing setting.';
COMMENT ON FUNCTION whatsapp_handler._claim_outbox(integer, integer) IS
    'Internal: claims the heads _heads_outbox(p_qty) returns for p_vt_seconds and counts the read. Returns (msg_id, read_ct, enqueued_at, message). Raises nothing.';

COMMIT;
