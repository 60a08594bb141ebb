-- Verify whatsapp_handler:messages/messages on pg
BEGIN;

SELECT id, created_at, channel_id, user_id, conversation_id, direction, provider_message_id, message_type,
       body, media, status, status_at, webhook_event_id, correlation_id
FROM whatsapp_handler.messages WHERE FALSE;
SELECT channel_id, provider_message_id, message_id, message_created_at FROM whatsapp_handler.message_keys WHERE FALSE;
SELECT 1 / count(*) FROM pg_catalog.pg_constraint
WHERE conrelid = 'whatsapp_handler.message_keys'::regclass AND contype = 'p';
SELECT 1 / count(*) FROM pg_catalog.pg_partition_tree('whatsapp_handler.messages') t
JOIN pg_catalog.pg_class c ON c.oid = t.relid
WHERE t.level = 1 AND c.relname LIKE 'messages\_p%';

ROLLBACK;
