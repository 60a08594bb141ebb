-- How fast are our messages delivered and read on each channel? Daily percentiles, with
-- the share of messages delivered, read and failed.
SELECT d.day, c.name AS channel, d.sent,
       round(d.delivered::numeric / nullif(d.sent, 0), 4) AS delivered_rate,
       round(d.read::numeric / nullif(d.sent, 0), 4) AS read_rate,
       round(d.failed::numeric / nullif(d.sent, 0), 4) AS failed_rate,
       d.sent_to_delivered_p50, d.sent_to_delivered_p90, d.sent_to_delivered_p99,
       d.delivered_to_read_p50, d.delivered_to_read_p90
FROM analytics.delivery_latency_daily d
JOIN analytics.channels c USING (channel_id)
ORDER BY d.day, c.name;
