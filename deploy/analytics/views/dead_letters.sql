-- Deploy whatsapp_handler:analytics/views/dead_letters to pg
-- requires: analytics/assert_view analytics/analyst_channels queue/dead_letters queue/inbound_dlq
-- security_barrier, owned by the owner (runs with its rights; analysts need no access to
-- the tables): rows limited to the analyst's channels (docs/analytics.md).
--
-- The view reads the dead-letter queues only, never a partitioned table: an analyst's
-- transaction open on it would hold a lock on webhook_events and every partition, the
-- partitions job's DROP would wait for it, and ingestion would queue behind that DROP. An
-- inbound dead letter names a raw webhook, not its channel; the channel is written into
-- the dead letter as it is queued (queue/inbound_dlq's trigger, in the transaction that
-- stored the webhook), so the view has nothing to look up. The view reads the queue
-- tables itself: a function between them would run as the analyst (inlined) or hide the
-- channel filter from the planner and need a grant of its own (SECURITY DEFINER).
BEGIN;
SET LOCAL ROLE whatsapp_handler_owner;

CREATE VIEW analytics.dead_letters WITH (security_barrier = true) AS
SELECT d.queue, d.channel_id, count(*) AS messages, min(d.enqueued_at) AS oldest_enqueued_at,
       extract(epoch FROM now() - min(d.enqueued_at))::double precision AS oldest_age_seconds,
       max(d.enqueued_at) AS newest_enqueued_at
FROM (
    SELECT 'inbound_dlq'::text AS queue, (q.message ->> 'channel_id')::bigint AS channel_id, q.enqueued_at
    FROM pgmq.q_inbound_dlq q
    UNION ALL
    SELECT 'outbound_dlq', (q.message #>> '{message,channel_id}')::bigint, q.enqueued_at FROM pgmq.q_outbound_dlq q
    UNION ALL
    SELECT 'outbox_dlq', (q.message #>> '{event,payload,channel_id}')::bigint, q.enqueued_at FROM pgmq.q_outbox_dlq q
) d
WHERE CASE WHEN d.channel_id IS NULL THEN (SELECT whatsapp_handler._sees_all_channels())
           ELSE d.channel_id = ANY ((SELECT whatsapp_handler._visible_channels())::bigint[]) END
GROUP BY d.queue, d.channel_id;
COMMENT ON VIEW analytics.dead_letters IS 'LIVE (the dead-letter queues only, never the partitioned tables). Dead-letter backlog per queue and channel: how many messages wait and how old the oldest is. No row: that queue holds nothing of the analyst''s channels. Dead letters of no known channel are shown only to analysts of all channels.';
COMMENT ON COLUMN analytics.dead_letters.queue IS 'inbound_dlq (webhooks that could not be processed), outbound_dlq (messages the worker could not deliver) or outbox_dlq (events consumers did not acknowledge).';
COMMENT ON COLUMN analytics.dead_letters.channel_id IS 'The channel, NULL when unknown.';
COMMENT ON COLUMN analytics.dead_letters.messages IS 'Dead letters waiting.';
COMMENT ON COLUMN analytics.dead_letters.oldest_enqueued_at IS 'When the oldest of them was dead-lettered.';
COMMENT ON COLUMN analytics.dead_letters.oldest_age_seconds IS 'Age of the oldest, in seconds, at query time.';
COMMENT ON COLUMN analytics.dead_letters.newest_enqueued_at IS 'When the newest was dead-lettered.';
GRANT SELECT ON analytics.dead_letters TO whatsapp_handler_analyst;

COMMIT;
