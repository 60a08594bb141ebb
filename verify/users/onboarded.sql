-- Verify whatsapp_handler:users/onboarded on pg
BEGIN;

SELECT onboarded_at FROM whatsapp_handler.users WHERE false;
SELECT 1 / (NOT EXISTS (SELECT FROM pg_catalog.pg_attribute WHERE attrelid = 'whatsapp_handler.users'::regclass
                        AND attname = 'registered_at' AND NOT attisdropped))::int;
-- The rule still holds under its new name: onboarded only once verified and terms accepted.
SELECT 1 / count(*) FROM pg_catalog.pg_constraint
WHERE conrelid = 'whatsapp_handler.users'::regclass AND conname = 'users_onboarded_after_terms_and_verification'
  AND pg_get_constraintdef(oid) LIKE '%onboarded_at IS NULL%verified_at IS NOT NULL%terms_accepted_at IS NOT NULL%';
SELECT 1 / (col_description('whatsapp_handler.users'::regclass,
                            (SELECT attnum FROM pg_catalog.pg_attribute WHERE attrelid = 'whatsapp_handler.users'::regclass
                             AND attname = 'onboarded_at')) LIKE '%onboarding completed%')::int;

ROLLBACK;
