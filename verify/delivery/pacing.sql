-- Verify whatsapp_handler:delivery/pacing on pg
BEGIN;

SELECT 1 / (count(*) = 6)::int FROM whatsapp_handler.settings WHERE key LIKE 'pacing.%';
SELECT channel_id, tat, booked_until, held_channel, held_pair, throttled, throttled_until
FROM whatsapp_handler.pacing_channels WHERE false;
SELECT channel_id, user_id, tat FROM whatsapp_handler.pacing_pairs WHERE false;
SELECT whatsapp_handler._assert_function('whatsapp_handler._pacing()', '{}');
SELECT whatsapp_handler._assert_function('whatsapp_handler._throttle_channel(bigint)', '{}');
SELECT whatsapp_handler._assert_function('whatsapp_handler._throttle_pair(bigint, bigint)', '{}');
SELECT whatsapp_handler._assert_function('whatsapp_handler.worker_pacing()', '{whatsapp_handler_worker}');
SELECT whatsapp_handler._assert_function('whatsapp_handler.worker_next_visible()', '{whatsapp_handler_worker}');

ROLLBACK;
