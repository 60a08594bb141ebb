-- What do our messages cost, and why do they fail? Per month, channel and pricing category:
-- messages, the billable ones (multiply by the rate card's price of the category), the
-- failed ones and the provider's error codes of those failures.
SELECT date_trunc('month', d.day)::date AS month, c.name AS channel, d.category,
       sum(d.messages) AS messages, sum(d.billable) AS billable, sum(d.failed) AS failed,
       string_agg(DISTINCT d.error_code, ', ' ORDER BY d.error_code) AS error_codes
FROM analytics.delivery_costs_daily d
JOIN analytics.channels c USING (channel_id)
GROUP BY 1, 2, 3
ORDER BY 1, 2, 3;
