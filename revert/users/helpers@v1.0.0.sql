-- Revert whatsapp_handler:users/helpers from pg
BEGIN;

DROP FUNCTION whatsapp_handler._complete_registration(bigint);
DROP FUNCTION whatsapp_handler._lock_user(bigint, boolean);
DROP FUNCTION whatsapp_handler._check_phone(text);

COMMIT;
