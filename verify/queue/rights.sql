-- Verify whatsapp_handler:queue/rights on pg
BEGIN;

SELECT whatsapp_handler._assert_function('whatsapp_handler._queue_rights_beyond_owner(text[])', '{}');

ROLLBACK;
