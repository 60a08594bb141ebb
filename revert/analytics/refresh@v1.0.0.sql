-- Revert whatsapp_handler:analytics/refresh from pg
BEGIN;
\ir ../kept.sql

DROP FUNCTION whatsapp_handler.job_analytics_refresh(timestamptz);
WITH gone AS (DELETE FROM whatsapp_handler.settings WHERE key = 'analytics.refresh_lookback' RETURNING *)
SELECT whatsapp_handler_kept.keep('setting', jsonb_agg(to_jsonb(gone))) FROM gone;

COMMIT;
