-- Deploy whatsapp_handler:queue_outbound to pg
-- requires: extension_pgmq role_groups
-- Messages to send. The worker reads them with pgmq.read and removes them with
-- pgmq.delete (OTP codes) or pgmq.archive; it needs the table rights pgmq's
-- SECURITY INVOKER functions use.
BEGIN;

DO $$ BEGIN PERFORM pgmq.create('outbound'); END $$;
ALTER TABLE pgmq.q_outbound OWNER TO whatsapp_handler_owner;
ALTER TABLE pgmq.a_outbound OWNER TO whatsapp_handler_owner;
COMMENT ON TABLE pgmq.q_outbound IS 'whatsapp-handler messages waiting for delivery by the worker; OTP messages carry the plaintext code until deleted.';

SET LOCAL ROLE whatsapp_handler_owner;
GRANT SELECT, UPDATE, DELETE ON pgmq.q_outbound TO whatsapp_handler_worker;
GRANT SELECT, INSERT ON pgmq.a_outbound TO whatsapp_handler_worker;

COMMIT;
