-- Verify whatsapp_handler:core/assert_function on pg
BEGIN;

SELECT whatsapp_handler._assert_function('whatsapp_handler.create_partition(regclass, timestamptz, timestamptz)', '{}');
-- It must reject a function that breaks the rules: correlation_id() has no SECURITY DEFINER.
DO $$
BEGIN
    PERFORM whatsapp_handler._assert_function('whatsapp_handler.correlation_id()', '{whatsapp_handler_relay}');
    RAISE EXCEPTION 'sentinel';
EXCEPTION WHEN raise_exception THEN
    IF SQLERRM = 'sentinel' THEN
        RAISE EXCEPTION '_assert_function accepted a function that is not SECURITY DEFINER';
    END IF;
END
$$;

ROLLBACK;
