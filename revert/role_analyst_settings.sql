-- Revert whatsapp_handler:role_analyst_settings from pg
BEGIN;

ALTER ROLE whatsapp_handler_analyst RESET statement_timeout;
ALTER ROLE whatsapp_handler_analyst RESET idle_in_transaction_session_timeout;
ALTER ROLE whatsapp_handler_analyst RESET default_transaction_read_only;

COMMIT;
