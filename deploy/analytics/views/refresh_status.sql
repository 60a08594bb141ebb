-- Deploy whatsapp_handler:analytics/views/refresh_status to pg
-- requires: analytics/assert_view analytics/summaries
-- security_barrier, owned by the owner (runs with its rights; analysts need no access to
-- the tables): rows limited to the analyst's channels (docs/analytics.md).
BEGIN;
SET LOCAL ROLE whatsapp_handler_owner;

CREATE VIEW analytics.refresh_status WITH (security_barrier = true) AS
SELECT refreshed_at, covered_from, extract(epoch FROM duration)::double precision AS duration_seconds,
       extract(epoch FROM now() - refreshed_at)::double precision AS age_seconds
FROM whatsapp_handler.analytics_refreshes;
COMMENT ON VIEW analytics.refresh_status IS 'LIVE. When the refreshed views were last recounted by job analytics_refresh (every 10 minutes), and from when. No row: never yet.';
COMMENT ON COLUMN analytics.refresh_status.refreshed_at IS 'When the last refresh ran.';
COMMENT ON COLUMN analytics.refresh_status.covered_from IS 'Earliest time the last refresh recounted (older days keep earlier counts).';
COMMENT ON COLUMN analytics.refresh_status.duration_seconds IS 'How long the refresh took.';
COMMENT ON COLUMN analytics.refresh_status.age_seconds IS 'Seconds since the last refresh, at query time.';
GRANT SELECT ON analytics.refresh_status TO whatsapp_handler_analyst;

COMMIT;
