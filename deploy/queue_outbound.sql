-- Deploy whatsapp_handler:queue_outbound to pg
-- requires: extension_pgmq role_groups
-- Messages to send. The worker reaches them only through the worker_* functions
-- (fn_worker), which run as the owner: no table right here, so that a worker's login
-- can neither read the queued OTP codes nor rewrite or delete what waits.
BEGIN;

DO $$ BEGIN PERFORM pgmq.create('outbound'); END $$;
ALTER TABLE pgmq.q_outbound OWNER TO whatsapp_handler_owner;
ALTER TABLE pgmq.a_outbound OWNER TO whatsapp_handler_owner;
COMMENT ON TABLE pgmq.q_outbound IS 'whatsapp-handler messages waiting for delivery by the worker; OTP messages carry the plaintext code until deleted.';

-- pgmq's install lets pg_monitor read every table made in its schema (default
-- privileges), and a DBA's own defaults may add more: every right on this queue's tables
-- and sequence goes but the owner's, so that no monitoring or built-in role reads a message.
DO $$
DECLARE
    v_grant record;
BEGIN
    FOR v_grant IN
        SELECT c.oid::regclass AS rel, c.relkind, CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE a.grantee::regrole::text END AS grantee
        FROM unnest(ARRAY['outbound']) q,
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
