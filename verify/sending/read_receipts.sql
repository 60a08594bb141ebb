-- Verify whatsapp_handler:sending/read_receipts on pg
BEGIN;

SELECT whatsapp_handler._assert_function('whatsapp_handler.mark_read(bytea, bigint, text, boolean, text)',
                                         '{whatsapp_handler_relay}');

ROLLBACK;
