-- Revert whatsapp_handler:otp/challenges from pg
BEGIN;

DROP TABLE whatsapp_handler.otp_challenges;
DROP TYPE whatsapp_handler.otp_status;

COMMIT;
