-- Deploy whatsapp_handler:queue/outbound to pg
-- requires: queue/rights queue/pgmq core/roles
-- Messages to send. The worker reaches them only through the worker_* functions
-- (delivery/worker), which run as the owner: no table right here, so that a worker's login
-- can neither read the queued OTP codes nor rewrite or delete what waits.
BEGIN;

DO $$ BEGIN PERFORM pgmq.create('outbound'); END $$;
ALTER TABLE pgmq.q_outbound OWNER TO whatsapp_handler_owner;
ALTER TABLE pgmq.a_outbound OWNER TO whatsapp_handler_owner;
COMMENT ON TABLE pgmq.q_outbound IS 'whatsapp-handler messages waiting for delivery by the worker; OTP messages carry the plaintext code until deleted.';

-- Every right on the queue's tables and sequence goes but the owner's (queue/rights).
SELECT format('REVOKE ALL ON %s %s FROM %s', kind, relation, grantee)
FROM whatsapp_handler._queue_rights_beyond_owner(ARRAY['outbound']) \gexec

COMMIT;
