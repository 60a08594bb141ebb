-- Where are our users? Distinct users per country calling code, and how many registered.
SELECT country_code,
       count(DISTINCT user_key) AS users,
       count(DISTINCT user_key) FILTER (WHERE registered_on IS NOT NULL) AS registered
FROM analytics.users
WHERE NOT erased
GROUP BY country_code
ORDER BY users DESC, country_code;
