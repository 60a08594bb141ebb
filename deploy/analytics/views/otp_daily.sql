-- Deploy whatsapp_handler:analytics/views/otp_daily to pg
-- requires: analytics/assert_view analytics/summaries_policy
-- security_barrier, owned by the owner (runs with its rights; analysts need no access to
-- the tables): rows limited to the analyst's channels (docs/analytics.md).
BEGIN;
SET LOCAL ROLE whatsapp_handler_owner;

CREATE VIEW analytics.otp_daily WITH (security_barrier = true) AS
SELECT day, channel_id, requested, verified, failed_attempts, locked, expired, superseded,
       requested - verified - locked - expired - superseded AS pending
FROM whatsapp_handler.analytics_otp_daily;
COMMENT ON VIEW analytics.otp_daily IS 'REFRESHED every 10 minutes. OTP codes issued per UTC day and channel and what became of them; counts never go down (the codes themselves are deleted a day after use).';
COMMENT ON COLUMN analytics.otp_daily.day IS 'UTC day the code was issued.';
COMMENT ON COLUMN analytics.otp_daily.channel_id IS 'Channel the code was sent on.';
COMMENT ON COLUMN analytics.otp_daily.requested IS 'Codes issued.';
COMMENT ON COLUMN analytics.otp_daily.verified IS 'Codes verified.';
COMMENT ON COLUMN analytics.otp_daily.failed_attempts IS 'Wrong codes entered against that day''s codes.';
COMMENT ON COLUMN analytics.otp_daily.locked IS 'Codes locked after too many wrong attempts.';
COMMENT ON COLUMN analytics.otp_daily.expired IS 'Codes found expired unused.';
COMMENT ON COLUMN analytics.otp_daily.superseded IS 'Codes replaced by a newer one before use.';
COMMENT ON COLUMN analytics.otp_daily.pending IS 'Codes neither verified, locked, expired nor superseded when last counted.';
GRANT SELECT ON analytics.otp_daily TO whatsapp_handler_analyst;

COMMIT;
