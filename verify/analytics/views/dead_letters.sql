-- Verify whatsapp_handler:analytics/views/dead_letters on pg
BEGIN;

SELECT queue, channel_id, messages, oldest_enqueued_at, oldest_age_seconds, newest_enqueued_at FROM analytics.dead_letters WHERE false;
SELECT whatsapp_handler._assert_analytics_view('analytics.dead_letters');
-- No partitioned table (nor a partition) under the view: an analyst holding it open must
-- never make the partitions job's DROP wait.
SELECT 1 / (count(*) = 0)::int
FROM pg_catalog.pg_depend d JOIN pg_catalog.pg_rewrite w ON w.oid = d.objid
JOIN pg_catalog.pg_class c ON c.oid = d.refobjid
WHERE d.classid = 'pg_rewrite'::regclass AND w.ev_class = 'analytics.dead_letters'::regclass
  AND (c.relkind = 'p' OR c.relispartition);

ROLLBACK;
