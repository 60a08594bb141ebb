-- Revert whatsapp_handler:core/partitions from pg
BEGIN;

DROP FUNCTION whatsapp_handler.create_partitions(regclass, text, integer);
DROP FUNCTION whatsapp_handler.create_partition(regclass, timestamptz, timestamptz);

COMMIT;
