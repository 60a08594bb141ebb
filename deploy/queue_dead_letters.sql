-- Deploy whatsapp_handler:queue_dead_letters to pg
-- requires: queue_outbox queue_outbound role_groups
-- A dead-letter queue per consumer (inbound_dlq, for webhooks, is its own change):
-- outbox_dlq takes events that consumers read too often without acknowledging them,
-- outbound_dlq takes messages the worker could not deliver. docs/queues.md has their
-- formats; `whatsapp-handler dlq` lists, shows, replays and purges them.
BEGIN;

DO $$
BEGIN
    PERFORM pgmq.create('outbox_dlq');
    PERFORM pgmq.create('outbound_dlq');
END
$$;
ALTER TABLE pgmq.q_outbox_dlq OWNER TO whatsapp_handler_owner;
ALTER TABLE pgmq.a_outbox_dlq OWNER TO whatsapp_handler_owner;
ALTER TABLE pgmq.q_outbound_dlq OWNER TO whatsapp_handler_owner;
ALTER TABLE pgmq.a_outbound_dlq OWNER TO whatsapp_handler_owner;
COMMENT ON TABLE pgmq.q_outbox_dlq IS 'whatsapp-handler outbox events read more than the allowed number of times without being acknowledged: {event, read_ct, dead_lettered_at}.';
COMMENT ON TABLE pgmq.q_outbound_dlq IS 'whatsapp-handler outbound messages the worker could not deliver: {message, reason, error, attempts, dead_lettered_at}; OTP messages lose their code on the way.';

-- pgmq's install lets pg_monitor read every table made in its schema (default
-- privileges), and a DBA's own defaults may add more: every right on these queues' tables
-- and sequences goes but the owner's, so that no monitoring or built-in role reads a message.
DO $$
DECLARE
    v_grant record;
BEGIN
    FOR v_grant IN
        SELECT c.oid::regclass AS rel, c.relkind, CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE a.grantee::regrole::text END AS grantee
        FROM unnest(ARRAY['outbox_dlq', 'outbound_dlq']) q,
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
