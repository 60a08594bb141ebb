-- Verify whatsapp_handler:users/block_user on pg
BEGIN;

SELECT whatsapp_handler._assert_function('whatsapp_handler.block_user(bigint, text)', '{}');
SELECT whatsapp_handler._assert_function('whatsapp_handler.unblock_user(bigint)', '{}');

ROLLBACK;
