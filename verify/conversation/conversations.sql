-- Verify whatsapp_handler:conversation/conversations on pg
BEGIN;

SELECT id, user_id, channel_id, state, context, terms_version, terms_accepted_at, state_changed_at, created_at, updated_at
FROM whatsapp_handler.conversations WHERE FALSE;
SELECT 1 / count(*) FROM pg_catalog.pg_constraint
WHERE conrelid = 'whatsapp_handler.conversations'::regclass AND conname = 'conversations_user_channel_unique';
SELECT 1 / count(*) FROM pg_catalog.pg_constraint
WHERE conrelid = 'whatsapp_handler.conversations'::regclass AND conname = 'conversations_terms_version_with_accepted_at';

ROLLBACK;
