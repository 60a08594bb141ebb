-- How many users did each channel onboard per month (terms accepted and phone verified)?
SELECT date_trunc('month', o.day)::date AS month, c.name AS channel, sum(o.onboarded) AS onboarded
FROM analytics.onboarded_daily o
JOIN analytics.channels c USING (channel_id)
GROUP BY 1, 2
ORDER BY 1, 2;
