-- Deploy whatsapp_handler:analytics/views/users to pg
-- requires: analytics/assert_view analytics/summaries_policy
-- security_barrier, owned by the owner (runs with its rights; analysts need no access to
-- the tables): rows limited to the analyst's channels (docs/analytics.md).
BEGIN;
SET LOCAL ROLE whatsapp_handler_owner;

CREATE VIEW analytics.users WITH (security_barrier = true) AS
SELECT user_key, channel_id, country_code, first_contact_on, terms_accepted_on, verified_on, registered_on, last_active_on, erased
FROM whatsapp_handler.analytics_users;
COMMENT ON VIEW analytics.users IS 'REFRESHED every 10 minutes (job analytics_refresh). One row per user and channel, pseudonymous: a keyed hash instead of the user, the country calling code instead of the phone, dates instead of times.';
COMMENT ON COLUMN analytics.users.user_key IS 'Pseudonymous user key: the first 128 bits of HMAC-SHA256 of the user under a secret only the owner reads, as a uuid (not an RFC 4122 one); the same user has the same key on every channel and every day. NULL once erased.';
COMMENT ON COLUMN analytics.users.channel_id IS 'The channel of the conversation.';
COMMENT ON COLUMN analytics.users.country_code IS 'Country calling code of the user''s number, such as +44 (+1 covers all NANP countries); NULL once erased.';
COMMENT ON COLUMN analytics.users.first_contact_on IS 'UTC day the user first wrote on this channel.';
COMMENT ON COLUMN analytics.users.terms_accepted_on IS 'UTC day the user accepted the terms (NULL: not yet).';
COMMENT ON COLUMN analytics.users.verified_on IS 'UTC day the user verified the number by OTP (NULL: not yet).';
COMMENT ON COLUMN analytics.users.registered_on IS 'UTC day registration completed (NULL: not yet).';
COMMENT ON COLUMN analytics.users.last_active_on IS 'UTC day of the user''s last activity.';
COMMENT ON COLUMN analytics.users.erased IS 'The user was erased (GDPR): still counted, not identifiable.';
GRANT SELECT ON analytics.users TO whatsapp_handler_analyst;

COMMIT;
