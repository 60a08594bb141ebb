-- Deploy whatsapp_handler:queue/inbound_dlq to pg
-- requires: queue/rights queue/pgmq core/roles
-- Webhooks whose content could not be normalised: the raw event stays in
-- webhook_events (outcome failed); this queue points at it for the re-drive job.
BEGIN;

DO $$ BEGIN PERFORM pgmq.create('inbound_dlq'); END $$;
ALTER TABLE pgmq.q_inbound_dlq OWNER TO whatsapp_handler_owner;
ALTER TABLE pgmq.a_inbound_dlq OWNER TO whatsapp_handler_owner;
COMMENT ON TABLE pgmq.q_inbound_dlq IS 'whatsapp-handler inbound dead letters: {webhook_event_id, received_at, provider, sqlstate, error, correlation_id}.';

-- Every right on the queue's tables and sequence goes but the owner's (queue/rights).
SELECT format('REVOKE ALL ON %s %s FROM %s', kind, relation, grantee)
FROM whatsapp_handler._queue_rights_beyond_owner(ARRAY['inbound_dlq']) \gexec

COMMIT;
