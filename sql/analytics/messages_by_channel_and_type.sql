-- How many messages of each type did each channel carry, each way, per month?
SELECT date_trunc('month', m.day)::date AS month, c.name AS channel, m.direction, m.message_type,
       sum(m.messages) AS messages
FROM analytics.messages_daily m
JOIN analytics.channels c USING (channel_id)
GROUP BY 1, 2, 3, 4
ORDER BY 1, 2, 3, 5 DESC;
