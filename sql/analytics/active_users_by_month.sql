-- Monthly active users per channel, with the average daily and weekly active users of the
-- month (stickiness: DAU / MAU).
WITH m AS (SELECT period_start AS month, channel_id, users AS mau FROM analytics.active_users WHERE period = 'month'),
     d AS (SELECT date_trunc('month', period_start)::date AS month, channel_id, avg(users) AS avg_dau
           FROM analytics.active_users WHERE period = 'day' GROUP BY 1, 2)
SELECT m.month, c.name AS channel, m.mau, round(d.avg_dau, 2) AS avg_dau, round(d.avg_dau / nullif(m.mau, 0), 4) AS dau_per_mau
FROM m
JOIN analytics.channels c USING (channel_id)
LEFT JOIN d USING (month, channel_id)
ORDER BY m.month, c.name;
