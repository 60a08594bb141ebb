-- Revert whatsapp_handler:fn_create_partition from pg
BEGIN;

DROP FUNCTION whatsapp_handler.create_partitions(regclass, text, integer);
DROP FUNCTION whatsapp_handler.create_partition(regclass, timestamptz, timestamptz);

COMMIT;
