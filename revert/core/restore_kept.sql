-- Revert whatsapp_handler:core/restore_kept from pg
-- Nothing to undo: the deploy made no object, and the rows it put back are the database's
-- data now (the reverts of the changes that made them keep them again, revert/kept.sql).
BEGIN;
COMMIT;
