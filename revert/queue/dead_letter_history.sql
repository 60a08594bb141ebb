-- Revert whatsapp_handler:queue/dead_letter_history from pg
-- The history goes with its table (as the tables of other changes after v1.0.0 do: take a
-- pg_dump first to keep it); the retention period a DBA may have set is kept for the next deploy.
BEGIN;
\ir ../kept.sql

DO $$
DECLARE
    v_rows bigint;
BEGIN
    SELECT count(*) INTO v_rows FROM whatsapp_handler.dead_letter_history;
    IF v_rows > 0 THEN
        RAISE NOTICE 'dropping % row(s) of whatsapp_handler.dead_letter_history', v_rows;
    END IF;
END
$$;
DROP FUNCTION whatsapp_handler.dead_letter_history_metrics();
DROP FUNCTION whatsapp_handler.dlq_history(text, integer);
DROP FUNCTION whatsapp_handler._dead_letter_log(text, text, text, jsonb);
DROP FUNCTION whatsapp_handler._lock_dead_letters(text, bigint[]);
DROP FUNCTION whatsapp_handler._delete_dead_letters(text, bigint[]);
DROP FUNCTION whatsapp_handler._letter_channel_id(text, jsonb);
DROP TABLE whatsapp_handler.dead_letter_history;
WITH gone AS (DELETE FROM whatsapp_handler.settings WHERE key = 'retention.dead_letter_history' RETURNING *)
SELECT whatsapp_handler_kept.keep('setting', jsonb_agg(to_jsonb(gone))) FROM gone;

COMMIT;
