-- Verify whatsapp_handler:analytics/schema on pg
BEGIN;

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_namespace WHERE nspname = 'analytics' AND nspowner = 'whatsapp_handler_owner'::regrole) THEN
        RAISE EXCEPTION 'schema analytics is missing or not owned by whatsapp_handler_owner';
    END IF;
    IF NOT has_schema_privilege('whatsapp_handler_analyst', 'analytics', 'USAGE')
       OR has_schema_privilege('whatsapp_handler_analyst', 'analytics', 'CREATE')
       OR has_schema_privilege('public', 'analytics', 'USAGE') THEN
        RAISE EXCEPTION 'schema analytics: the analyst must have USAGE (and no CREATE); PUBLIC nothing';
    END IF;
    IF has_schema_privilege('whatsapp_handler_analyst', 'whatsapp_handler', 'USAGE')
       OR (to_regnamespace('pgmq') IS NOT NULL AND has_schema_privilege('whatsapp_handler_analyst', 'pgmq', 'USAGE')) THEN
        RAISE EXCEPTION 'the analyst role may use schema whatsapp_handler or pgmq: it must read analytics only';
    END IF;
END
$$;

ROLLBACK;
