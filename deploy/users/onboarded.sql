-- Deploy whatsapp_handler:users/onboarded to pg
-- requires: users/users users/helpers
-- "Registered" means first contact (register_user, the event user.registered, the webhook
-- result's registrations); the milestone of terms accepted and phone verified is
-- "onboarded". The column and its rule are renamed in place: rows keep their stamps.
-- _complete_registration still names registered_at until users/helpers, reworked next,
-- replaces it with _complete_onboarding (a call in between fails and is retried).
BEGIN;
SET LOCAL ROLE whatsapp_handler_owner;

ALTER TABLE whatsapp_handler.users RENAME COLUMN registered_at TO onboarded_at;
ALTER TABLE whatsapp_handler.users RENAME CONSTRAINT users_registered_after_terms_and_verification
    TO users_onboarded_after_terms_and_verification;
COMMENT ON COLUMN whatsapp_handler.users.onboarded_at IS 'When onboarding completed: terms accepted and phone verified (OTP), whichever came last. Not first contact: that is created_at (register_user, user.registered).';

COMMIT;
