-- Verify whatsapp_handler:jobs/settings on pg
BEGIN;

SELECT whatsapp_handler._assert_function('whatsapp_handler._setting_interval(text, interval)', '{}');
SELECT whatsapp_handler._assert_function('whatsapp_handler._setting_integer(text, integer, integer)', '{}');
-- Every key the jobs read is there (a missing one would stop its job with WH011).
SELECT 1 / (count(*) = 18)::int FROM whatsapp_handler.settings
WHERE key IN ('partitions.webhook_events.ahead', 'partitions.messages.ahead', 'partitions.message_status_events.ahead',
              'retention.webhook_events', 'retention.messages', 'retention.message_status_events',
              'retention.queue_archives', 'retention.otp_challenges', 'retention.cron_history', 'retention.batch_size',
              'gdpr.inactive_after', 'gdpr.batch_size',
              'redrive.inbound.max_attempts', 'redrive.inbound.backoff', 'redrive.inbound.backoff_max',
              'redrive.outbound.max_redrives', 'redrive.outbound.backoff', 'redrive.outbound.backoff_max');

ROLLBACK;
