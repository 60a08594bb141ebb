-- Revert whatsapp_handler:consent/consents from pg
BEGIN;

DROP FUNCTION whatsapp_handler._check_consent(bigint, bigint, text);
DROP FUNCTION whatsapp_handler._record_consent(bigint, bigint, boolean, text);
DROP TABLE whatsapp_handler.consents;

COMMIT;
