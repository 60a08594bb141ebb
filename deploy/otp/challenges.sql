-- Deploy whatsapp_handler:otp/challenges to pg
-- requires: users/users core/channels
BEGIN;
SET LOCAL ROLE whatsapp_handler_owner;

CREATE TYPE whatsapp_handler.otp_status AS ENUM ('pending', 'verified', 'expired', 'locked', 'superseded');
COMMENT ON TYPE whatsapp_handler.otp_status IS 'pending: awaiting the code; verified: used once, done; expired: found past its expiry; locked: too many wrong codes; superseded: a newer code was issued.';

CREATE TABLE whatsapp_handler.otp_challenges (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id         bigint NOT NULL REFERENCES whatsapp_handler.users (id) ON DELETE CASCADE,
    channel_id      bigint NOT NULL REFERENCES whatsapp_handler.channels (id),
    status          whatsapp_handler.otp_status NOT NULL DEFAULT 'pending',
    code_hash       text,
    failed_attempts smallint NOT NULL DEFAULT 0
                    CONSTRAINT otp_challenges_failed_attempts_range CHECK (failed_attempts BETWEEN 0 AND 100),
    created_at      timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL,
    resolved_at     timestamptz,
    CONSTRAINT otp_challenges_expires_after_created CHECK (expires_at > created_at),
    -- Only a pending challenge keeps its hash: once resolved, nothing can be checked against it.
    CONSTRAINT otp_challenges_pending_has_hash_and_no_resolution
        CHECK ((status = 'pending') = (code_hash IS NOT NULL) AND (status = 'pending') = (resolved_at IS NULL)),
    -- How many wrong codes lock is setting otp.max_failures (1-100), which a DBA may change while
    -- challenges are live: the table holds only what is true whatever its value.
    CONSTRAINT otp_challenges_locked_after_failures CHECK (status <> 'locked' OR failed_attempts > 0)
);
COMMENT ON TABLE whatsapp_handler.otp_challenges IS 'One issued OTP code. The code itself is never stored: only its bcrypt hash, and only while pending.';
COMMENT ON COLUMN whatsapp_handler.otp_challenges.failed_attempts IS 'Wrong codes so far, carried over from the challenge it superseded so a new code does not reset the count; setting otp.max_failures locks it.';

-- At most one live code per user; request_otp supersedes the previous one.
CREATE UNIQUE INDEX otp_challenges_one_pending_per_user ON whatsapp_handler.otp_challenges (user_id) WHERE status = 'pending';
-- The latest challenge of a user, and the rate limits over the last hour.
CREATE INDEX otp_challenges_user_created_idx ON whatsapp_handler.otp_challenges (user_id, created_at DESC);

COMMIT;
