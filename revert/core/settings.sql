-- Revert whatsapp_handler:core/settings from pg
BEGIN;
\ir ../kept.sql

DROP FUNCTION whatsapp_handler._setting(text);
WITH gone AS (DELETE FROM whatsapp_handler.settings RETURNING *)
SELECT whatsapp_handler_kept.keep('setting', jsonb_agg(to_jsonb(gone))) FROM gone;
DROP TABLE whatsapp_handler.settings;

COMMIT;
