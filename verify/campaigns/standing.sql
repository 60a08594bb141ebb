-- Verify whatsapp_handler:campaigns/standing on pg
BEGIN;

SELECT whatsapp_handler._assert_function('whatsapp_handler._campaigns_pause_on_quality()', '{}');
SELECT whatsapp_handler._assert_function('whatsapp_handler._campaigns_follow_connection()', '{}');
SELECT 1 / count(*) FROM pg_catalog.pg_trigger
WHERE tgname = 'channel_standing_campaigns_pause' AND tgrelid = 'whatsapp_handler.channel_standing'::regclass
  AND tgfoid = 'whatsapp_handler._campaigns_pause_on_quality()'::regprocedure AND tgenabled = 'O';
SELECT 1 / count(*) FROM pg_catalog.pg_trigger
WHERE tgname = 'channel_standing_campaigns_connection' AND tgrelid = 'whatsapp_handler.channel_standing'::regclass
  AND tgfoid = 'whatsapp_handler._campaigns_follow_connection()'::regprocedure AND tgenabled = 'O';

ROLLBACK;
