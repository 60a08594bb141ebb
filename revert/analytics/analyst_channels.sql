-- Revert whatsapp_handler:analytics/analyst_channels from pg
-- Logins made analysts keep their membership and settings (roles are cluster-wide);
-- remove_analyst each of them first to undo those too.
BEGIN;
\ir ../kept.sql

DROP FUNCTION whatsapp_handler.remove_analyst(name);
DROP FUNCTION whatsapp_handler.add_analyst(name, bigint[], boolean, text, text);
DROP FUNCTION whatsapp_handler._sees_all_channels();
DROP FUNCTION whatsapp_handler._visible_channels();
SELECT whatsapp_handler_kept.keep('analyst', jsonb_agg(to_jsonb(a))) FROM whatsapp_handler.analyst_channels a;
DROP TABLE whatsapp_handler.analyst_channels;

COMMIT;
