-- Verify whatsapp_handler:core/restore_kept on pg
-- The deploy consumes what a revert kept: nothing may be left waiting in whatsapp_handler_kept.
BEGIN;

DO $$
BEGIN
    IF to_regclass('whatsapp_handler_kept.rows') IS NOT NULL THEN
        RAISE EXCEPTION 'schema whatsapp_handler_kept still holds what a revert kept'
            USING HINT = 'Deploy core/restore_kept again (sqitch rebase --onto core/restore_kept^), or DROP SCHEMA whatsapp_handler_kept CASCADE to forget it.';
    END IF;
END
$$;

ROLLBACK;
