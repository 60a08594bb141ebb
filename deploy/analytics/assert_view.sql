-- Deploy whatsapp_handler:analytics/assert_view to pg
-- requires: analytics/schema core/assert_function
-- The check every analytics view's verify script runs: what each view must look like.
BEGIN;
SET LOCAL ROLE whatsapp_handler_owner;

CREATE FUNCTION whatsapp_handler._assert_analytics_view(p_view regclass)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
DECLARE
    v_role   text;
    v_column text;
BEGIN
    IF NOT EXISTS (SELECT FROM pg_class WHERE oid = p_view AND relkind = 'v' AND relnamespace = 'analytics'::regnamespace
                   AND relowner = 'whatsapp_handler_owner'::regrole) THEN
        RAISE EXCEPTION '% is not a view of schema analytics owned by whatsapp_handler_owner', p_view;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_class WHERE oid = p_view AND reloptions @> ARRAY['security_barrier=true']) THEN
        RAISE EXCEPTION '% is not a security_barrier view', p_view;
    END IF;
    IF obj_description(p_view, 'pg_class') IS NULL THEN
        RAISE EXCEPTION '% has no COMMENT', p_view;
    END IF;
    SELECT attname INTO v_column FROM pg_attribute
    WHERE attrelid = p_view AND attnum > 0 AND NOT attisdropped AND col_description(p_view, attnum) IS NULL LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'column % of % has no COMMENT', v_column, p_view;
    END IF;
    SELECT attname INTO v_column FROM pg_attribute
    WHERE attrelid = p_view AND attnum > 0 AND NOT attisdropped AND attname ~ '(phone|body|user_id)' LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'column % of % looks like personal data', v_column, p_view;
    END IF;
    IF NOT has_table_privilege('whatsapp_handler_analyst', p_view, 'SELECT') THEN
        RAISE EXCEPTION 'whatsapp_handler_analyst may not read %', p_view;
    END IF;
    IF has_table_privilege('whatsapp_handler_analyst', p_view, 'INSERT, UPDATE, DELETE, TRUNCATE') THEN
        RAISE EXCEPTION 'whatsapp_handler_analyst may change %', p_view;
    END IF;
    FOREACH v_role IN ARRAY ARRAY['public', 'whatsapp_handler_relay', 'whatsapp_handler_worker', 'whatsapp_handler_consumer'] LOOP
        IF has_table_privilege(v_role, p_view, 'SELECT') THEN
            RAISE EXCEPTION '% may read %', v_role, p_view;
        END IF;
    END LOOP;
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler._assert_analytics_view(regclass) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler._assert_analytics_view(regclass) IS
    'Verify scripts: raises unless the view is in schema analytics, owned by the owner, a security_barrier view, commented with every column, has no column named like a phone, body or user id, and is readable (only) by whatsapp_handler_analyst.';

COMMIT;
