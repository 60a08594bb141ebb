-- Deploy whatsapp_handler:core/assert_function to pg
-- requires: core/schema
-- Used by the verify scripts of the API functions: one place states what every
-- callable function must look like (docs/security.md, Roles).
BEGIN;
SET LOCAL ROLE whatsapp_handler_owner;

CREATE FUNCTION whatsapp_handler._assert_function(p_fn regprocedure, p_callers text[])
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
DECLARE
    v_role text;
BEGIN
    IF NOT EXISTS (SELECT FROM pg_proc WHERE oid = p_fn AND proowner = 'whatsapp_handler_owner'::regrole) THEN
        RAISE EXCEPTION '% is not owned by whatsapp_handler_owner', p_fn;
    END IF;
    -- Internal SQL helpers may omit it so that they are inlined; everything else fixes it.
    IF NOT EXISTS (SELECT FROM pg_proc WHERE oid = p_fn
                   AND (proconfig @> ARRAY['search_path=pg_catalog, whatsapp_handler, pg_temp']
                        OR (cardinality(p_callers) = 0 AND prolang = (SELECT oid FROM pg_language WHERE lanname = 'sql')
                            AND NOT prosecdef))) THEN
        RAISE EXCEPTION '% has no fixed search_path', p_fn;
    END IF;
    IF obj_description(p_fn, 'pg_proc') IS NULL THEN
        RAISE EXCEPTION '% has no COMMENT', p_fn;
    END IF;
    IF has_function_privilege('public', p_fn, 'execute') THEN
        RAISE EXCEPTION 'PUBLIC may execute %', p_fn;
    END IF;
    IF cardinality(p_callers) > 0 AND NOT (SELECT prosecdef FROM pg_proc WHERE oid = p_fn) THEN
        RAISE EXCEPTION '% is callable by roles but not SECURITY DEFINER', p_fn;
    END IF;
    FOREACH v_role IN ARRAY ARRAY['whatsapp_handler_relay', 'whatsapp_handler_worker', 'whatsapp_handler_analyst',
                                 'whatsapp_handler_consumer'] LOOP
        IF has_function_privilege(v_role, p_fn, 'execute') <> (v_role = ANY (p_callers)) THEN
            RAISE EXCEPTION 'EXECUTE on % for %: expected %', p_fn, v_role, v_role = ANY (p_callers);
        END IF;
    END LOOP;
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler._assert_function(regprocedure, text[]) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler._assert_function(regprocedure, text[]) IS
    'Verify scripts: raises unless the function is owned by the owner, has the fixed search_path (internal SQL helpers may omit it to be inlined), is commented, not executable by PUBLIC, SECURITY DEFINER when it has callers, and executable by exactly the listed project roles.';

COMMIT;
