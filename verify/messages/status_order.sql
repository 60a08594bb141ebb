-- Verify whatsapp_handler:messages/status_order on pg
BEGIN;

SELECT whatsapp_handler._assert_function('whatsapp_handler._advance_status(bigint, timestamptz, whatsapp_handler.message_status, timestamptz, text, jsonb, bigint)', '{}');
SELECT whatsapp_handler._assert_function('whatsapp_handler._advance_status(bigint, timestamptz, whatsapp_handler.message_status, timestamptz, text, jsonb, bigint, jsonb)', '{}');
SELECT whatsapp_handler._assert_function('whatsapp_handler._status_rank(whatsapp_handler.message_status)', '{}');
-- The order: a failure ranks after sent and before delivered.
SELECT 1 / (whatsapp_handler._status_rank('sent') < whatsapp_handler._status_rank('failed')
            AND whatsapp_handler._status_rank('failed') < whatsapp_handler._status_rank('delivered')
            AND whatsapp_handler._status_rank('delivered') < whatsapp_handler._status_rank('read'))::int;

ROLLBACK;
