-- Revert whatsapp_handler:queue/autovacuum from pg
-- The queue tables back to the server's autovacuum settings: the parameters this change sets are
-- RESET (others a DBA set stay).
BEGIN;
SET LOCAL ROLE whatsapp_handler_owner;

SELECT format('ALTER TABLE %s RESET (%s)', t.relation,
              (SELECT string_agg(split_part(o, '=', 1), ', ')
               FROM unnest(whatsapp_handler._queue_autovacuum_options(t.kind)) o))
FROM whatsapp_handler._queue_tables() t \gexec

DROP FUNCTION whatsapp_handler._queue_tables();
DROP FUNCTION whatsapp_handler._queue_autovacuum(text);
DROP FUNCTION whatsapp_handler._queue_autovacuum_options(text);

COMMIT;
