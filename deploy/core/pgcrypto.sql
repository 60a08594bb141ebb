-- Deploy whatsapp_handler:core/pgcrypto to pg
-- pgcrypto hashes OTP codes (crypt/gen_salt) and draws random bytes. Functions call
-- it schema-qualified as public.*, so it must live in schema public.
BEGIN;

DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_catalog.pg_extension e JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace
               WHERE e.extname = 'pgcrypto' AND n.nspname <> 'public') THEN
        RAISE EXCEPTION 'pgcrypto is installed outside schema public'
            USING ERRCODE = 'WH090',
                  HINT = 'Run ALTER EXTENSION pgcrypto SET SCHEMA public; then deploy again.';
    END IF;
END
$$;

CREATE EXTENSION IF NOT EXISTS pgcrypto WITH SCHEMA public;

COMMIT;
