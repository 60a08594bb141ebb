-- How do OTP codes end, per day: verified, locked after wrong codes, expired, superseded;
-- and how many wrong codes are entered per code issued?
SELECT day,
       sum(requested) AS requested,
       sum(verified) AS verified,
       sum(locked) AS locked,
       sum(expired) AS expired,
       sum(superseded) AS superseded,
       round(sum(verified)::numeric / nullif(sum(requested), 0), 4) AS verified_rate,
       round(sum(failed_attempts)::numeric / nullif(sum(requested), 0), 4) AS failed_attempts_per_code
FROM analytics.otp_daily
GROUP BY day
ORDER BY day;
