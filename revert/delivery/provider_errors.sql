-- Revert whatsapp_handler:delivery/provider_errors from pg
-- An operator's changes to provider_errors go with the table: a redeploy gives the defaults.
BEGIN;

DROP FUNCTION whatsapp_handler.worker_failed(bigint, text, text, jsonb, double precision);
DROP TABLE whatsapp_handler.provider_errors;

COMMIT;
