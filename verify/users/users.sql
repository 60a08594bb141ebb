-- Verify whatsapp_handler:users/users on pg
BEGIN;

-- registered_at became onboarded_at (users/onboarded checks that name).
SELECT id, phone, display_name, verified_at, last_active_at, terms_accepted_at,
       terms_version, blocked_at, blocked_reason, erased_at, created_at, updated_at
FROM whatsapp_handler.users WHERE FALSE;
SELECT 1 / (count(*) = 1)::int FROM pg_catalog.pg_attribute
WHERE attrelid = 'whatsapp_handler.users'::regclass AND attname IN ('registered_at', 'onboarded_at') AND NOT attisdropped;
SELECT 1 / (count(*) = 3)::int FROM pg_catalog.pg_constraint
WHERE conrelid = 'whatsapp_handler.users'::regclass
  AND conname IN ('users_phone_e164', 'users_phone_unique', 'users_phone_present_unless_erased');
SELECT 1 / (atttypid = 'whatsapp_handler.e164'::regtype)::int FROM pg_catalog.pg_attribute
WHERE attrelid = 'whatsapp_handler.users'::regclass AND attname = 'phone';
SELECT 1 / (NOT has_table_privilege('whatsapp_handler_relay', 'whatsapp_handler.users', 'select'))::int;

ROLLBACK;
