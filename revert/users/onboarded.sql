-- Revert whatsapp_handler:users/onboarded from pg
-- The names v1.0.0 released, with their stamps and the released comment.
BEGIN;
SET LOCAL ROLE whatsapp_handler_owner;

ALTER TABLE whatsapp_handler.users RENAME COLUMN onboarded_at TO registered_at;
ALTER TABLE whatsapp_handler.users RENAME CONSTRAINT users_onboarded_after_terms_and_verification
    TO users_registered_after_terms_and_verification;
COMMENT ON COLUMN whatsapp_handler.users.registered_at IS 'When registration completed: terms accepted and phone verified, whichever came last.';

COMMIT;
