-- Deploy whatsapp_handler:queue/rights to pg
-- requires: core/schema queue/pgmq
-- The one statement of who may touch a queue's tables: every queue change revokes what
-- it lists and every queue verify fails on what it lists. pgmq's install lets pg_monitor
-- read every table made in its schema (default privileges), and a DBA's own defaults may
-- add more; no monitoring or built-in role may read a queued OTP code, body or event.
BEGIN;
SET LOCAL ROLE whatsapp_handler_owner;

CREATE FUNCTION whatsapp_handler._queue_rights_beyond_owner(p_queues text[])
RETURNS TABLE (relation regclass, kind text, grantee text)
LANGUAGE sql STABLE
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
    SELECT c.oid::regclass, CASE WHEN c.relkind = 'S' THEN 'SEQUENCE' ELSE 'TABLE' END,
           CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE a.grantee::regrole::text END
    FROM unnest(p_queues) q,
         LATERAL (VALUES (format('pgmq.q_%s', q)::regclass), (format('pgmq.a_%s', q)::regclass),
                         (pg_get_serial_sequence(format('pgmq.q_%s', q), 'msg_id')::regclass)) r (oid)
    JOIN pg_class c ON c.oid = r.oid, aclexplode(c.relacl) a
    WHERE a.grantee <> c.relowner
$$;
REVOKE ALL ON FUNCTION whatsapp_handler._queue_rights_beyond_owner(text[]) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler._queue_rights_beyond_owner(text[]) IS
    'Internal, for the queue changes: every right on the named pgmq queues'' tables (q_, a_) and msg_id sequence held by another role than their owner (PUBLIC included), as (relation, TABLE or SEQUENCE, grantee). Raises 42P01 for a queue that does not exist.';

COMMIT;
