-- How many registrations did each channel complete per month?
SELECT date_trunc('month', r.day)::date AS month, c.name AS channel, sum(r.registrations) AS registrations
FROM analytics.registrations_daily r
JOIN analytics.channels c USING (channel_id)
GROUP BY 1, 2
ORDER BY 1, 2;
