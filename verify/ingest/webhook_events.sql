-- Verify whatsapp_handler:ingest/webhook_events on pg
BEGIN;

SELECT id, received_at, provider, channel_id, correlation_id, payload, raw, note, outcome, error
FROM whatsapp_handler.webhook_events WHERE FALSE;
-- An event without payload is a failed one with its raw body; a raw body always has its note.
SELECT 1 / (count(*) = 2)::integer FROM pg_catalog.pg_constraint
WHERE conrelid = 'whatsapp_handler.webhook_events'::regclass
  AND conname IN ('webhook_events_payload_or_failed_raw', 'webhook_events_raw_with_note');
SELECT 1 / count(*) FROM pg_catalog.pg_partitioned_table WHERE partrelid = 'whatsapp_handler.webhook_events'::regclass;
-- A default partition and at least one ranged partition.
SELECT 1 / count(*) FROM pg_catalog.pg_partition_tree('whatsapp_handler.webhook_events') t
JOIN pg_catalog.pg_class c ON c.oid = t.relid
WHERE t.level = 1 AND c.relname = 'webhook_events_default';
SELECT 1 / count(*) FROM pg_catalog.pg_partition_tree('whatsapp_handler.webhook_events') t
JOIN pg_catalog.pg_class c ON c.oid = t.relid
WHERE t.level = 1 AND c.relname LIKE 'webhook\_events\_p%';

ROLLBACK;
