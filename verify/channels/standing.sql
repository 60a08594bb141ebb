-- Verify whatsapp_handler:channels/standing on pg
BEGIN;

SELECT channel_id, connection, connection_reason, connection_at, connection_changed_at, quality_event, current_limit,
       quality_at, quality_changed_at, account_event, account_info, account_disabled, account_at, account_changed_at
FROM whatsapp_handler.channel_standing WHERE FALSE;
-- Roles read a channel's standing through worker_channel_standing, never the table.
SELECT 1 / (NOT has_table_privilege(r, 'whatsapp_handler.channel_standing', 'select'))::int
FROM unnest(ARRAY['whatsapp_handler_relay', 'whatsapp_handler_worker', 'whatsapp_handler_consumer',
                  'whatsapp_handler_analyst', 'whatsapp_handler_cron']) r;
SELECT whatsapp_handler._assert_function('whatsapp_handler._channel_connected(text, boolean)', '{}');
SELECT whatsapp_handler._assert_function('whatsapp_handler._channel_connection_update(bigint, text, integer, timestamptz)', '{}');
SELECT whatsapp_handler._assert_function('whatsapp_handler._meta_entry_time(text)', '{}');
SELECT whatsapp_handler._assert_function('whatsapp_handler._quality_flagged(text)', '{}');
SELECT whatsapp_handler._assert_function('whatsapp_handler._meta_number(text)', '{}');
SELECT whatsapp_handler._assert_function('whatsapp_handler._channel_standing_lock(bigint)', '{}');
SELECT whatsapp_handler._assert_function('whatsapp_handler._meta_quality_update(text, jsonb, timestamptz)', '{}');
SELECT whatsapp_handler._assert_function('whatsapp_handler._meta_account_update(text, jsonb, timestamptz)', '{}');
SELECT whatsapp_handler._assert_function('whatsapp_handler.worker_channel_standing()', '{whatsapp_handler_worker}');
-- The one rule of up and down.
SELECT 1 / (whatsapp_handler._channel_connected(NULL, false) AND whatsapp_handler._channel_connected('open', NULL)
            AND NOT whatsapp_handler._channel_connected('close', false)
            AND NOT whatsapp_handler._channel_connected('connecting', false)
            AND NOT whatsapp_handler._channel_connected('open', true))::int;
SELECT 1 / (whatsapp_handler._quality_flagged('FLAGGED') AND whatsapp_handler._quality_flagged('DOWNGRADE')
            AND NOT whatsapp_handler._quality_flagged('UNFLAGGED') AND NOT whatsapp_handler._quality_flagged(NULL))::int;
SELECT 1 / (whatsapp_handler._meta_number('1 555-000 1111') = '+15550001111'
            AND whatsapp_handler._meta_number('') IS NULL)::int;

ROLLBACK;
