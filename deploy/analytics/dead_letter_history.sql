-- Deploy whatsapp_handler:analytics/dead_letter_history to pg
-- requires: analytics/assert_view analytics/analyst_channels queue/dead_letter_history
-- What became of dead letters, per UTC day, for analysts: security_barrier, owned by the owner
-- (analysts need no access to the table), each letter counted under its channel and limited to
-- the analyst's channels; a letter of no known channel only for analysts of all channels. Live:
-- the history is neither partitioned nor dropped by a job (the retention job deletes rows, which
-- an analyst's open transaction does not hold up). No login, no payload, no phone leaves it.
BEGIN;
SET LOCAL ROLE whatsapp_handler_owner;

CREATE VIEW analytics.dead_letter_history_daily WITH (security_barrier = true) AS
SELECT l.day, l.queue, l.action, l.result, l.channel_id, l.run_by, count(DISTINCT l.id) AS runs, count(*) AS letters
FROM (
    SELECT (h.created_at AT TIME ZONE 'UTC')::date AS day, h.queue, h.action, r ->> 'result' AS result,
           -- Written by the re-drives, replays and purges from _letter_channel_id: a whole number or null.
           (r ->> 'channel_id')::bigint AS channel_id,
           CASE WHEN h.job IS NOT NULL OR h.login = 'whatsapp_handler_cron' THEN 'job' ELSE 'login' END AS run_by, h.id
    FROM whatsapp_handler.dead_letter_history h
    CROSS JOIN LATERAL jsonb_array_elements(
        CASE WHEN jsonb_typeof(h.outcome -> 'results') = 'array' THEN h.outcome -> 'results' ELSE '[]' END) r
) l
WHERE CASE WHEN l.channel_id IS NULL THEN (SELECT whatsapp_handler._sees_all_channels())
           ELSE l.channel_id = ANY ((SELECT whatsapp_handler._visible_channels())::bigint[]) END
GROUP BY l.day, l.queue, l.action, l.result, l.channel_id, l.run_by;
COMMENT ON VIEW analytics.dead_letter_history_daily IS 'LIVE. What re-drives, replays and purges did to dead letters, per UTC day, queue, action, result, channel and who ran them (a job or a person). A parked letter counts twice: under its run (redrive or replay, result parked) and under park.';
COMMENT ON COLUMN analytics.dead_letter_history_daily.day IS 'UTC day of the action.';
COMMENT ON COLUMN analytics.dead_letter_history_daily.queue IS 'inbound_dlq (webhooks that could not be processed), outbound_dlq (messages the worker could not deliver) or outbox_dlq (events consumers did not acknowledge).';
COMMENT ON COLUMN analytics.dead_letter_history_daily.action IS 'redrive (the scheduled re-drive), replay (letters named by an operator), purge (deleted for good) or park (given up on, waiting for a person).';
COMMENT ON COLUMN analytics.dead_letter_history_daily.result IS 'What became of each letter: redriven, failed, parked, gone, refused, erased, replayed or purged.';
COMMENT ON COLUMN analytics.dead_letter_history_daily.channel_id IS 'The channel of the letters, NULL when unknown.';
COMMENT ON COLUMN analytics.dead_letter_history_daily.run_by IS 'job (pg_cron) or login (an operator).';
COMMENT ON COLUMN analytics.dead_letter_history_daily.runs IS 'Calls (re-drive runs, replays, purges) that acted on these letters.';
COMMENT ON COLUMN analytics.dead_letter_history_daily.letters IS 'Dead letters with this result.';
GRANT SELECT ON analytics.dead_letter_history_daily TO whatsapp_handler_analyst;

COMMIT;
