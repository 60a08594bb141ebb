-- Revert whatsapp_handler:core/autovacuum from pg
-- The hot tables and their partitions back to the server's autovacuum settings: the parameters
-- this change sets are RESET (others a DBA set, such as fillfactor, stay).
BEGIN;
SET LOCAL ROLE whatsapp_handler_owner;

SELECT format('ALTER TABLE %s RESET (%s)', t.relation,
              (SELECT string_agg(split_part(o, '=', 1), ', ') FROM unnest(t.options) o))
FROM whatsapp_handler._autovacuum_tables() t \gexec

DROP FUNCTION whatsapp_handler._set_autovacuum(regclass);
DROP FUNCTION whatsapp_handler._autovacuum_tables();
DROP FUNCTION whatsapp_handler._autovacuum_hot_tables();

COMMIT;
