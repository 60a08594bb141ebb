-- Verify whatsapp_handler:analytics/analyst_role on pg
BEGIN;

DO $$
DECLARE
    v_config text[] := (SELECT setconfig FROM pg_db_role_setting
                        WHERE setrole = 'whatsapp_handler_analyst'::regrole AND setdatabase = 0);
BEGIN
    IF v_config IS NULL OR NOT v_config @> ARRAY['statement_timeout=30s', 'idle_in_transaction_session_timeout=60s',
                                                 'default_transaction_read_only=on'] THEN
        RAISE EXCEPTION 'whatsapp_handler_analyst lacks its statement and idle-in-transaction timeouts: %', v_config;
    END IF;
END
$$;

ROLLBACK;
