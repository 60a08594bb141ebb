-- Revert whatsapp_handler:sending/window from pg
BEGIN;
\ir ../kept.sql

DROP FUNCTION whatsapp_handler._check_window(bigint, bigint);
DROP FUNCTION whatsapp_handler._window_open(bigint, bigint);
WITH gone AS (DELETE FROM whatsapp_handler.settings WHERE key = 'sending.window' RETURNING *)
SELECT whatsapp_handler_kept.keep('setting', jsonb_agg(to_jsonb(gone))) FROM gone;

COMMIT;
