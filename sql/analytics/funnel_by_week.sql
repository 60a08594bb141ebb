-- Which share of the people who first write to us in a week go on to accept the terms,
-- verify their number and so complete onboarding? (cohorts by ISO week, all my channels)
SELECT date_trunc('week', day)::date AS week,
       sum(first_contacts) AS first_contacts,
       sum(terms_accepted) AS terms_accepted,
       sum(verified) AS verified,
       sum(onboarded) AS onboarded,
       round(sum(onboarded)::numeric / nullif(sum(first_contacts), 0), 4) AS onboarded_rate
FROM analytics.funnel_daily
GROUP BY 1
ORDER BY 1;
