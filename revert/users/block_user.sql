-- Revert whatsapp_handler:users/block_user from pg
BEGIN;

DROP FUNCTION whatsapp_handler.unblock_user(bigint);
DROP FUNCTION whatsapp_handler.block_user(bigint, text);

COMMIT;
