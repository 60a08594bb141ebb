-- Deploy whatsapp_handler:analytics/summaries to pg
-- requires: core/schema core/channels
-- The summaries behind the refreshed analytics views (docs/analytics.md): small tables
-- kept by job_analytics_refresh, so that the views answer from a few thousand rows
-- instead of a year of messages. Days are UTC days. Private to the owner; row-level
-- security (change analytics/summaries_policy) limits them to an analyst's channels.
BEGIN;
SET LOCAL ROLE whatsapp_handler_owner;

CREATE TABLE whatsapp_handler.analytics_users (
    user_id           bigint NOT NULL,
    channel_id        bigint NOT NULL,
    user_key          uuid,
    country_code      text,
    first_contact_on  date NOT NULL,
    terms_accepted_on date,
    verified_on       date,
    registered_on     date,
    last_active_on    date,
    erased            boolean NOT NULL DEFAULT false,
    PRIMARY KEY (user_id, channel_id),
    CONSTRAINT analytics_users_erased_anonymous CHECK (NOT erased OR (user_key IS NULL AND country_code IS NULL))
);
COMMENT ON TABLE whatsapp_handler.analytics_users IS 'One row per user and channel (a conversation), pseudonymous: dates only, the keyed user hash and the calling code. An erased user keeps the row for the counts, without key or code.';
COMMENT ON COLUMN whatsapp_handler.analytics_users.user_id IS 'whatsapp_handler.users.id; never shown to analysts.';
COMMENT ON COLUMN whatsapp_handler.analytics_users.channel_id IS 'The channel of the conversation.';
COMMENT ON COLUMN whatsapp_handler.analytics_users.user_key IS '_user_key(user_id); NULL once erased.';
COMMENT ON COLUMN whatsapp_handler.analytics_users.country_code IS '_country_code(phone); NULL once erased.';
COMMENT ON COLUMN whatsapp_handler.analytics_users.first_contact_on IS 'UTC day the conversation on this channel began.';
COMMENT ON COLUMN whatsapp_handler.analytics_users.terms_accepted_on IS 'UTC day the user accepted the terms (any channel).';
COMMENT ON COLUMN whatsapp_handler.analytics_users.verified_on IS 'UTC day the user verified the number by OTP.';
COMMENT ON COLUMN whatsapp_handler.analytics_users.registered_on IS 'UTC day registration completed (terms and verification).';
COMMENT ON COLUMN whatsapp_handler.analytics_users.last_active_on IS 'UTC day of the user''s last activity.';
COMMENT ON COLUMN whatsapp_handler.analytics_users.erased IS 'The user was erased (GDPR): counted, no longer identifiable even by key.';
CREATE INDEX analytics_users_channel_first_contact_idx ON whatsapp_handler.analytics_users (channel_id, first_contact_on);

CREATE TABLE whatsapp_handler.analytics_funnel_daily (
    day            date NOT NULL,
    channel_id     bigint NOT NULL,
    first_contacts integer NOT NULL,
    terms_accepted integer NOT NULL,
    verified       integer NOT NULL,
    registered     integer NOT NULL,
    PRIMARY KEY (day, channel_id)
);
COMMENT ON TABLE whatsapp_handler.analytics_funnel_daily IS 'Registration funnel per cohort: users whose conversation on a channel began that UTC day, and how many of them have since accepted the terms, verified, registered.';
COMMENT ON COLUMN whatsapp_handler.analytics_funnel_daily.day IS 'UTC day of first contact on the channel (the cohort).';
COMMENT ON COLUMN whatsapp_handler.analytics_funnel_daily.channel_id IS 'The channel.';
COMMENT ON COLUMN whatsapp_handler.analytics_funnel_daily.first_contacts IS 'Users of the cohort.';
COMMENT ON COLUMN whatsapp_handler.analytics_funnel_daily.terms_accepted IS 'Of them, those who accepted the terms.';
COMMENT ON COLUMN whatsapp_handler.analytics_funnel_daily.verified IS 'Of them, those who verified by OTP.';
COMMENT ON COLUMN whatsapp_handler.analytics_funnel_daily.registered IS 'Of them, those whose registration completed.';

CREATE TABLE whatsapp_handler.analytics_registrations_daily (
    day           date NOT NULL,
    channel_id    bigint NOT NULL,
    registrations integer NOT NULL,
    PRIMARY KEY (day, channel_id)
);
COMMENT ON TABLE whatsapp_handler.analytics_registrations_daily IS 'Registrations completed per UTC day, on the channel of the user''s first conversation.';
COMMENT ON COLUMN whatsapp_handler.analytics_registrations_daily.day IS 'UTC day registration completed.';
COMMENT ON COLUMN whatsapp_handler.analytics_registrations_daily.channel_id IS 'The channel of the user''s first conversation.';
COMMENT ON COLUMN whatsapp_handler.analytics_registrations_daily.registrations IS 'Users whose registration completed that day.';

CREATE TABLE whatsapp_handler.analytics_otp_daily (
    day             date NOT NULL,
    channel_id      bigint NOT NULL,
    requested       integer NOT NULL,
    verified        integer NOT NULL,
    failed_attempts integer NOT NULL,
    locked          integer NOT NULL,
    expired         integer NOT NULL,
    superseded      integer NOT NULL,
    PRIMARY KEY (day, channel_id)
);
COMMENT ON TABLE whatsapp_handler.analytics_otp_daily IS 'OTP codes issued per UTC day and channel and what became of them. Counts never go down: the challenges themselves are deleted a day after they resolve.';
COMMENT ON COLUMN whatsapp_handler.analytics_otp_daily.day IS 'UTC day the code was issued.';
COMMENT ON COLUMN whatsapp_handler.analytics_otp_daily.channel_id IS 'The channel the code was sent on.';
COMMENT ON COLUMN whatsapp_handler.analytics_otp_daily.requested IS 'Codes issued.';
COMMENT ON COLUMN whatsapp_handler.analytics_otp_daily.verified IS 'Codes verified.';
COMMENT ON COLUMN whatsapp_handler.analytics_otp_daily.failed_attempts IS 'Wrong codes entered against them.';
COMMENT ON COLUMN whatsapp_handler.analytics_otp_daily.locked IS 'Codes locked after too many wrong attempts.';
COMMENT ON COLUMN whatsapp_handler.analytics_otp_daily.expired IS 'Codes that expired unused.';
COMMENT ON COLUMN whatsapp_handler.analytics_otp_daily.superseded IS 'Codes replaced by a newer one before use.';

CREATE TABLE whatsapp_handler.analytics_messages_daily (
    day          date NOT NULL,
    channel_id   bigint NOT NULL,
    direction    text NOT NULL,
    message_type text NOT NULL,
    messages     bigint NOT NULL,
    PRIMARY KEY (day, channel_id, direction, message_type)
);
COMMENT ON TABLE whatsapp_handler.analytics_messages_daily IS 'Messages per UTC day, channel, direction and type. Counts never go down (retention and erasure delete messages, not what was counted).';
COMMENT ON COLUMN whatsapp_handler.analytics_messages_daily.day IS 'UTC day the message was recorded.';
COMMENT ON COLUMN whatsapp_handler.analytics_messages_daily.channel_id IS 'The channel.';
COMMENT ON COLUMN whatsapp_handler.analytics_messages_daily.direction IS 'inbound (from users) or outbound (to them).';
COMMENT ON COLUMN whatsapp_handler.analytics_messages_daily.message_type IS 'text, image, interactive, template, ... as the provider named it.';
COMMENT ON COLUMN whatsapp_handler.analytics_messages_daily.messages IS 'Number of messages.';

CREATE TABLE whatsapp_handler.analytics_delivery_daily (
    day                    date NOT NULL,
    channel_id             bigint NOT NULL,
    sent                   integer NOT NULL,
    delivered              integer NOT NULL,
    read                   integer NOT NULL,
    failed                 integer NOT NULL,
    sent_to_delivered_p50  double precision,
    sent_to_delivered_p90  double precision,
    sent_to_delivered_p99  double precision,
    delivered_to_read_p50  double precision,
    delivered_to_read_p90  double precision,
    delivered_to_read_p99  double precision,
    sent_to_read_p50       double precision,
    PRIMARY KEY (day, channel_id)
);
COMMENT ON TABLE whatsapp_handler.analytics_delivery_daily IS 'Delivery of outbound messages per UTC day of their "sent" status and channel, from the statuses providers reported (message_status_events): counts and latency percentiles in seconds.';
COMMENT ON COLUMN whatsapp_handler.analytics_delivery_daily.day IS 'UTC day of the first "sent" status.';
COMMENT ON COLUMN whatsapp_handler.analytics_delivery_daily.channel_id IS 'The channel.';
COMMENT ON COLUMN whatsapp_handler.analytics_delivery_daily.sent IS 'Messages reported sent.';
COMMENT ON COLUMN whatsapp_handler.analytics_delivery_daily.delivered IS 'Of them, reported delivered.';
COMMENT ON COLUMN whatsapp_handler.analytics_delivery_daily.read IS 'Of them, reported read.';
COMMENT ON COLUMN whatsapp_handler.analytics_delivery_daily.failed IS 'Of them, reported failed.';
COMMENT ON COLUMN whatsapp_handler.analytics_delivery_daily.sent_to_delivered_p50 IS 'Median seconds from sent to delivered (provider clocks: occurred_at).';
COMMENT ON COLUMN whatsapp_handler.analytics_delivery_daily.sent_to_delivered_p90 IS '90th percentile seconds from sent to delivered.';
COMMENT ON COLUMN whatsapp_handler.analytics_delivery_daily.sent_to_delivered_p99 IS '99th percentile seconds from sent to delivered.';
COMMENT ON COLUMN whatsapp_handler.analytics_delivery_daily.delivered_to_read_p50 IS 'Median seconds from delivered to read.';
COMMENT ON COLUMN whatsapp_handler.analytics_delivery_daily.delivered_to_read_p90 IS '90th percentile seconds from delivered to read.';
COMMENT ON COLUMN whatsapp_handler.analytics_delivery_daily.delivered_to_read_p99 IS '99th percentile seconds from delivered to read.';
COMMENT ON COLUMN whatsapp_handler.analytics_delivery_daily.sent_to_read_p50 IS 'Median seconds from sent to read.';

CREATE TABLE whatsapp_handler.analytics_active_users (
    period       text NOT NULL CONSTRAINT analytics_active_users_period CHECK (period IN ('day', 'week', 'month')),
    period_start date NOT NULL,
    channel_id   bigint NOT NULL,
    users        integer NOT NULL,
    PRIMARY KEY (period, period_start, channel_id)
);
COMMENT ON TABLE whatsapp_handler.analytics_active_users IS 'Distinct users who sent at least one message on a channel in a UTC day, ISO week (from Monday) or calendar month. Counts never go down.';
COMMENT ON COLUMN whatsapp_handler.analytics_active_users.period IS 'day, week or month.';
COMMENT ON COLUMN whatsapp_handler.analytics_active_users.period_start IS 'First UTC day of the period.';
COMMENT ON COLUMN whatsapp_handler.analytics_active_users.channel_id IS 'The channel.';
COMMENT ON COLUMN whatsapp_handler.analytics_active_users.users IS 'Distinct users with an inbound message in the period.';

CREATE TABLE whatsapp_handler.analytics_refreshes (
    id           boolean PRIMARY KEY DEFAULT true CONSTRAINT analytics_refreshes_one_row CHECK (id),
    refreshed_at timestamptz NOT NULL,
    covered_from timestamptz NOT NULL,
    duration     interval NOT NULL
);
COMMENT ON TABLE whatsapp_handler.analytics_refreshes IS 'One row: the last run of job_analytics_refresh.';
COMMENT ON COLUMN whatsapp_handler.analytics_refreshes.id IS 'Always true: one row.';
COMMENT ON COLUMN whatsapp_handler.analytics_refreshes.refreshed_at IS 'When the last refresh ran.';
COMMENT ON COLUMN whatsapp_handler.analytics_refreshes.covered_from IS 'The earliest time the last refresh recounted.';
COMMENT ON COLUMN whatsapp_handler.analytics_refreshes.duration IS 'How long it took.';

COMMIT;
