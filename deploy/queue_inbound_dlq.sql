-- Deploy whatsapp_handler:queue_inbound_dlq to pg
-- requires: extension_pgmq role_groups
-- Webhooks whose content could not be normalised: the raw event stays in
-- webhook_events (outcome failed); this queue points at it for the re-drive job.
BEGIN;

DO $$ BEGIN PERFORM pgmq.create('inbound_dlq'); END $$;
ALTER TABLE pgmq.q_inbound_dlq OWNER TO whatsapp_handler_owner;
ALTER TABLE pgmq.a_inbound_dlq OWNER TO whatsapp_handler_owner;
COMMENT ON TABLE pgmq.q_inbound_dlq IS 'whatsapp-handler inbound dead letters: {webhook_event_id, received_at, provider, sqlstate, error, correlation_id}.';

-- pgmq's install lets pg_monitor read every table made in its schema (default
-- privileges), and a DBA's own defaults may add more: every right on this queue's tables
-- and sequence goes but the owner's, so that no monitoring or built-in role reads a message.
DO $$
DECLARE
    v_grant record;
BEGIN
    FOR v_grant IN
        SELECT c.oid::regclass AS rel, c.relkind, CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE a.grantee::regrole::text END AS grantee
        FROM unnest(ARRAY['inbound_dlq']) q,
             LATERAL (VALUES (format('pgmq.q_%s', q)::regclass), (format('pgmq.a_%s', q)::regclass),
                             (pg_get_serial_sequence(format('pgmq.q_%s', q), 'msg_id')::regclass)) r (oid)
        JOIN pg_catalog.pg_class c ON c.oid = r.oid, aclexplode(c.relacl) a
        WHERE a.grantee <> c.relowner
    LOOP
        EXECUTE format('REVOKE ALL ON %s %s FROM %s', CASE WHEN v_grant.relkind = 'S' THEN 'SEQUENCE' ELSE 'TABLE' END,
                       v_grant.rel, v_grant.grantee);
    END LOOP;
END
$$;

COMMIT;
