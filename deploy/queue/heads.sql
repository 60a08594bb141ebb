-- Deploy whatsapp_handler:queue/heads to pg
-- requires: queue/outbox queue/outbound core/assert_function
-- A group's messages go one at a time and in order (x-pgmq-group: one user's replies on
-- outbound, one user's events on outbox): only the head of a group may be claimed, and
-- the message after it waits, visible or not, until the head is settled. This change
-- holds that rule once: the group index of each queue and _heads_<queue>(), made from one
-- template for outbound (worker_claim) and outbox (outbox_read).
BEGIN;

-- As the deployer: an index needs CREATE on schema pgmq, which the owner role lacks.
-- Finds the message ahead of a claim candidate in its group.
CREATE INDEX q_outbound_group_idx ON pgmq.q_outbound ((headers ->> 'x-pgmq-group'), msg_id);
CREATE INDEX q_outbox_group_idx ON pgmq.q_outbox ((headers ->> 'x-pgmq-group'), msg_id);
SET LOCAL ROLE whatsapp_handler_owner;

-- One template, one function per queue: pgmq's tables differ by name only, and a static
-- statement is planned once per session where dynamic SQL would be planned on every claim.
DO $do$
DECLARE
    v_queue text;
BEGIN
    FOREACH v_queue IN ARRAY ARRAY['outbound', 'outbox'] LOOP
        EXECUTE format($template$
CREATE FUNCTION whatsapp_handler._heads_%1$s(p_qty integer, p_skip_channels bigint[] DEFAULT '{}')
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

COMMIT;
