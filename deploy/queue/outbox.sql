-- Deploy whatsapp_handler:queue/outbox to pg
-- requires: queue/rights queue/pgmq core/roles
-- Created by the deployer (pgmq.create needs CREATE on schema pgmq), then handed to
-- the owner so that the SECURITY DEFINER functions can pgmq.send into it.
BEGIN;

DO $$ BEGIN PERFORM pgmq.create('outbox'); END $$;
ALTER TABLE pgmq.q_outbox OWNER TO whatsapp_handler_owner;
ALTER TABLE pgmq.a_outbox OWNER TO whatsapp_handler_owner;
COMMENT ON TABLE pgmq.q_outbox IS 'whatsapp-handler domain events (docs/events.md); grouped per aggregate by header x-pgmq-group.';

-- Every right on the queue's tables and sequence goes but the owner's (queue/rights).
SELECT format('REVOKE ALL ON %s %s FROM %s', kind, relation, grantee)
FROM whatsapp_handler._queue_rights_beyond_owner(ARRAY['outbox']) \gexec

COMMIT;
