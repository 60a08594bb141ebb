-- Verify whatsapp_handler:queue/archive on pg
BEGIN;

SELECT whatsapp_handler._assert_function('whatsapp_handler._archive_outbound(bigint[])', '{}');
SELECT whatsapp_handler._assert_function('whatsapp_handler._archive_outbox(bigint[])', '{}');
SELECT whatsapp_handler._assert_function('whatsapp_handler._trim_archives(timestamptz, integer)', '{}');

ROLLBACK;
