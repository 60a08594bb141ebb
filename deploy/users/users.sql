-- Deploy whatsapp_handler:users/users to pg
-- requires: core/schema core/e164
BEGIN;
SET LOCAL ROLE whatsapp_handler_owner;

CREATE TABLE whatsapp_handler.users (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- The domain holds the rule; the named constraint asks the same function, so that a
    -- verify (and an operator reading \d) finds the rule on the table by its name.
    phone             whatsapp_handler.e164 CONSTRAINT users_phone_e164 CHECK (whatsapp_handler._is_e164(phone)),
    display_name      text CONSTRAINT users_display_name_length CHECK (char_length(display_name) <= 256),
    verified_at       timestamptz,
    registered_at     timestamptz,
    last_active_at    timestamptz,
    terms_accepted_at timestamptz,
    terms_version     text CONSTRAINT users_terms_version_shape CHECK (terms_version ~ '^[A-Za-z0-9._-]{1,32}$'),
    blocked_at        timestamptz,
    blocked_reason    text CONSTRAINT users_blocked_reason_length CHECK (char_length(blocked_reason) BETWEEN 1 AND 500),
    erased_at         timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT users_phone_unique UNIQUE (phone),
    CONSTRAINT users_phone_present_unless_erased CHECK ((phone IS NULL) = (erased_at IS NOT NULL)),
    CONSTRAINT users_terms_version_with_accepted_at CHECK ((terms_version IS NULL) = (terms_accepted_at IS NULL)),
    CONSTRAINT users_blocked_reason_only_when_blocked CHECK (blocked_reason IS NULL OR blocked_at IS NOT NULL),
    CONSTRAINT users_registered_after_terms_and_verification
        CHECK (registered_at IS NULL OR (verified_at IS NOT NULL AND terms_accepted_at IS NOT NULL))
);
COMMENT ON TABLE whatsapp_handler.users IS 'A person known by phone number. Erased users keep their row, anonymised (phone and name NULL).';
COMMENT ON COLUMN whatsapp_handler.users.phone IS 'E.164; NULL only once erased.';
COMMENT ON COLUMN whatsapp_handler.users.verified_at IS 'When the phone was last proven by an OTP code.';
COMMENT ON COLUMN whatsapp_handler.users.registered_at IS 'When registration completed: terms accepted and phone verified, whichever came last.';
COMMENT ON COLUMN whatsapp_handler.users.last_active_at IS 'Last inbound activity; drives the GDPR inactivity job.';
COMMENT ON COLUMN whatsapp_handler.users.terms_version IS 'The version of the terms the user accepted last.';

-- The GDPR inactivity job looks for users not active since a cutoff.
CREATE INDEX users_last_active_at_idx ON whatsapp_handler.users (last_active_at) WHERE erased_at IS NULL;

COMMIT;
