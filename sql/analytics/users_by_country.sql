-- Where are our users? Users per country calling code, and how many are onboarded (terms
-- accepted and phone verified). A user has a row per channel: one row per user first
-- (hashed, not sorted), then the counts.
SELECT country_code,
       count(*) AS users,
       count(*) FILTER (WHERE onboarded) AS onboarded
FROM (SELECT user_key, country_code, bool_or(onboarded_on IS NOT NULL) AS onboarded
      FROM analytics.users
      WHERE NOT erased
      GROUP BY user_key, country_code) per_user
GROUP BY country_code
ORDER BY users DESC, country_code;
