-- Revert whatsapp_handler:jobs/settings from pg
BEGIN;
\ir ../kept.sql

DROP FUNCTION whatsapp_handler._setting_integer(text, integer, integer);
DROP FUNCTION whatsapp_handler._setting_interval(text, interval);
WITH gone AS (DELETE FROM whatsapp_handler.settings
WHERE key IN ('partitions.webhook_events.ahead', 'partitions.messages.ahead', 'partitions.message_status_events.ahead',
              'retention.webhook_events', 'retention.messages', 'retention.message_status_events',
              'retention.queue_archives', 'retention.otp_challenges', 'retention.cron_history', 'retention.batch_size',
              'gdpr.inactive_after', 'gdpr.batch_size',
              'redrive.inbound.max_attempts', 'redrive.inbound.backoff', 'redrive.inbound.backoff_max',
              'redrive.outbound.max_redrives', 'redrive.outbound.backoff', 'redrive.outbound.backoff_max') RETURNING *)
SELECT whatsapp_handler_kept.keep('setting', jsonb_agg(to_jsonb(gone))) FROM gone;

COMMIT;
