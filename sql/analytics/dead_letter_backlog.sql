-- Is anything stuck? Dead letters waiting per queue, and the age of the oldest in hours.
SELECT queue, sum(messages) AS messages, round((max(oldest_age_seconds) / 3600)::numeric, 2) AS oldest_age_hours
FROM analytics.dead_letters
GROUP BY queue
ORDER BY queue;
