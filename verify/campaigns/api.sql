-- Verify whatsapp_handler:campaigns/api on pg
BEGIN;

ROLLBACK;
