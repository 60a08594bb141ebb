-- Revert whatsapp_handler:analytics/campaigns from pg
BEGIN;

DROP VIEW analytics.campaigns;

COMMIT;
