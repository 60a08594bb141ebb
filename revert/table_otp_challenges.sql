-- Revert whatsapp_handler:table_otp_challenges from pg
BEGIN;

DROP TABLE whatsapp_handler.otp_challenges;
DROP TYPE whatsapp_handler.otp_status;

COMMIT;
