-- Deploy whatsapp_handler:users/preferences to pg
-- requires: users/users
BEGIN;
SET LOCAL ROLE whatsapp_handler_owner;

CREATE TABLE whatsapp_handler.user_preferences (
    user_id                 bigint PRIMARY KEY REFERENCES whatsapp_handler.users (id) ON DELETE CASCADE,
    notifications_enabled   boolean NOT NULL DEFAULT true,
    language                text NOT NULL DEFAULT 'en-GB'
                            CONSTRAINT user_preferences_language_tag CHECK (language ~ '^[a-z]{2,3}(-[A-Z]{2})?$'),
    timezone                text NOT NULL DEFAULT 'UTC'
                            CONSTRAINT user_preferences_timezone_length CHECK (char_length(timezone) BETWEEN 1 AND 64),
    delay_threshold_minutes integer NOT NULL DEFAULT 15
                            CONSTRAINT user_preferences_delay_threshold_range CHECK (delay_threshold_minutes BETWEEN 0 AND 1440),
    auto_claim              boolean NOT NULL DEFAULT false,
    updated_at              timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE whatsapp_handler.user_preferences IS 'One row per user, made at registration with the defaults.';
COMMENT ON COLUMN whatsapp_handler.user_preferences.language IS 'BCP 47 language tag (language, optional region), default en-GB.';
COMMENT ON COLUMN whatsapp_handler.user_preferences.timezone IS 'An IANA time zone name known to PostgreSQL (checked by set_user_preferences).';
COMMENT ON COLUMN whatsapp_handler.user_preferences.delay_threshold_minutes IS 'Delays shorter than this are not notified (0-1440).';

COMMIT;
