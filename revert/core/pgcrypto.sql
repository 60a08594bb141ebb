-- Revert whatsapp_handler:core/pgcrypto from pg
-- Dropped unless something outside this project still depends on it.
BEGIN;

DO $$
BEGIN
    DROP EXTENSION IF EXISTS pgcrypto;
EXCEPTION WHEN dependent_objects_still_exist THEN
    RAISE NOTICE 'extension pgcrypto kept: other objects depend on it';
END
$$;

COMMIT;
