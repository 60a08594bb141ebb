-- Verify whatsapp_handler:core/pgcrypto on pg
BEGIN;

SELECT 1 / count(*) FROM pg_catalog.pg_extension e JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace
WHERE e.extname = 'pgcrypto' AND n.nspname = 'public';
SELECT public.crypt('x', public.gen_salt('bf', 4)), public.gen_random_bytes(1);

ROLLBACK;
