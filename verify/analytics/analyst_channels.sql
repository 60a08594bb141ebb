-- Verify whatsapp_handler:analytics/analyst_channels on pg
BEGIN;

SELECT analyst, all_channels, channel_ids, created_at, updated_at FROM whatsapp_handler.analyst_channels WHERE false;
SELECT whatsapp_handler._assert_function('whatsapp_handler._visible_channels()', '{whatsapp_handler_analyst}');
SELECT whatsapp_handler._assert_function('whatsapp_handler._sees_all_channels()', '{whatsapp_handler_analyst}');
SELECT whatsapp_handler._assert_function('whatsapp_handler.add_analyst(name, bigint[], boolean, text, text)', '{}');
SELECT whatsapp_handler._assert_function('whatsapp_handler.remove_analyst(name)', '{}');
DO $$
BEGIN
    IF NOT (SELECT prosecdef FROM pg_proc WHERE oid = 'whatsapp_handler._visible_channels()'::regprocedure) THEN
        RAISE EXCEPTION '_visible_channels must be SECURITY DEFINER (analysts cannot read analyst_channels)';
    END IF;
    IF has_table_privilege('whatsapp_handler_analyst', 'whatsapp_handler.analyst_channels', 'SELECT') THEN
        RAISE EXCEPTION 'analysts may read whatsapp_handler.analyst_channels';
    END IF;
    -- The safe default: a login with no row sees no channel.
    IF pg_get_functiondef('whatsapp_handler._visible_channels()'::regprocedure) !~ 'ELSE coalesce\(a\.channel_ids, ''\{\}''\)' THEN
        RAISE EXCEPTION '_visible_channels does not default to no channel';
    END IF;
END
$$;

ROLLBACK;
