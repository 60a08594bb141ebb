-- Revert whatsapp_handler:queue/heads from pg
-- Puts back the functions as v1.0.0 released them (deploy/queue/heads@v1.0.0.sql).
BEGIN;
SET LOCAL ROLE whatsapp_handler_owner;

DROP FUNCTION whatsapp_handler._hold_followers(bigint[]);

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
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $body$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    SELECT q.msg_id, q.headers
    FROM pgmq.q_%1$s q
    WHERE q.vt <= clock_timestamp()
      AND NOT ((q.message ->> 'channel_id')::bigint = ANY (coalesce(p_skip_channels, '{}')))
      -- Only the head of its group, visible or not: while it is being handled (or waits
      -- for its retry), the group's next message waits behind it. One index probe per
      -- candidate, where pgmq's grouped read aggregates the whole queue each time.
      AND NOT EXISTS (SELECT FROM pgmq.q_%1$s e
                      WHERE e.headers ->> 'x-pgmq-group' = q.headers ->> 'x-pgmq-group' AND e.msg_id < q.msg_id)
    ORDER BY q.msg_id
    LIMIT p_qty
    FOR UPDATE OF q SKIP LOCKED;
END
$body$
$template$, v_queue);
        EXECUTE format('REVOKE ALL ON FUNCTION whatsapp_handler._heads_%s(integer, bigint[]) FROM PUBLIC', v_queue);
        EXECUTE format('COMMENT ON FUNCTION whatsapp_handler._heads_%s(integer, bigint[]) IS %L', v_queue,
            format('Internal: locks and returns (msg_id, headers) of up to p_qty visible messages of pgmq queue %s, '
                   'oldest first, each the head of its x-pgmq-group, none whose message.channel_id is in '
                   'p_skip_channels; skips locked ones. The caller claims them in its transaction. Raises nothing.',
                   v_queue));
    END LOOP;
END
$do$;

-- A claim takes the heads and hides them for the reader's visibility timeout, in one
-- statement (set-based: no call per message). The worker's state of an outbound message
-- is in its headers: attempts counts the claims, in_flight marks one not yet settled.
CREATE OR REPLACE FUNCTION whatsapp_handler._claim_outbound(p_qty integer, p_vt_seconds integer, p_skip_channels bigint[] DEFAULT '{}')
RETURNS TABLE (msg_id bigint, attempts integer, was_in_flight boolean, message jsonb)
LANGUAGE plpgsql
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    WITH picked AS (
        SELECT h.msg_id, coalesce((h.headers ->> 'in_flight')::boolean, false) AS was_in_flight
        FROM _heads_outbound(p_qty, p_skip_channels) h
    )
    UPDATE pgmq.q_outbound q
    SET vt = clock_timestamp() + make_interval(secs => p_vt_seconds),
        read_ct = q.read_ct + 1,
        last_read_at = clock_timestamp(),
        headers = q.headers || jsonb_build_object('in_flight', true,
                                                  'attempts', coalesce((q.headers ->> 'attempts')::integer, 0) + 1)
    FROM picked p
    WHERE q.msg_id = p.msg_id
    RETURNING q.msg_id, (q.headers ->> 'attempts')::integer, p.was_in_flight, q.message;
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
    'Internal: claims the heads _heads_outbound(p_qty, p_skip_channels) returns for p_vt_seconds: counts the read and the attempt (header attempts) and marks them in flight. Returns (msg_id, attempts, was_in_flight: a previous claim was never settled, message). Raises nothing.';
COMMENT ON FUNCTION whatsapp_handler._claim_outbox(integer, integer) IS
    'Internal: claims the heads _heads_outbox(p_qty) returns for p_vt_seconds and counts the read. Returns (msg_id, read_ct, enqueued_at, message). Raises nothing.';

COMMIT;
