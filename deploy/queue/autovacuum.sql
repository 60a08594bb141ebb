-- Deploy whatsapp_handler:queue/autovacuum to pg
-- requires: queue/pgmq queue/outbox queue/outbound queue/dead_letters queue/inbound_dlq
-- Autovacuum for the queue tables (docs/database.md#vacuum). A queue churns every row: queued,
-- updated by every read (pgmq.read, the claims), deleted or moved to the archive. PostgreSQL's
-- default waits for a fifth of the live rows to be dead, which a backlog makes large just when
-- the claims must scan past them; here a fixed count triggers it, and the vacuum is not
-- throttled. An archive only grows, until retention deletes its oldest rows in batches.
-- Queues are made by the deploy only (nothing calls pgmq.create at run time): a queue change
-- made after this one calls _queue_autovacuum for its queue.
BEGIN;
SET LOCAL ROLE whatsapp_handler_owner;

CREATE FUNCTION whatsapp_handler._queue_autovacuum(p_queue text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
BEGIN
    EXECUTE format('ALTER TABLE pgmq.%I SET (%s)', 'q_' || p_queue,
                   array_to_string(_queue_autovacuum_options('q'), ', '));
    EXECUTE format('ALTER TABLE pgmq.%I SET (%s)', 'a_' || p_queue,
                   array_to_string(_queue_autovacuum_options('a'), ', '));
END
$$;

-- The one home of the values; measured with bench/vacuum_bench.py.
CREATE FUNCTION whatsapp_handler._queue_autovacuum_options(p_kind text)
RETURNS text[]
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
    SELECT CASE p_kind
        WHEN 'q' THEN ARRAY['autovacuum_vacuum_scale_factor=0', 'autovacuum_vacuum_threshold=1000',
                            'autovacuum_vacuum_insert_scale_factor=0', 'autovacuum_vacuum_insert_threshold=1000',
                            'autovacuum_analyze_scale_factor=0', 'autovacuum_analyze_threshold=1000',
                            'autovacuum_vacuum_cost_delay=0']
        WHEN 'a' THEN ARRAY['autovacuum_vacuum_scale_factor=0.02', 'autovacuum_vacuum_insert_scale_factor=0.02',
                            'autovacuum_analyze_scale_factor=0.02']
    END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler._queue_autovacuum_options(text) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler._queue_autovacuum_options(text) IS
    'Internal: the autovacuum storage parameters of a queue table (p_kind q) or of its archive (a), as name=value; NULL for another kind. Raises nothing.';
REVOKE ALL ON FUNCTION whatsapp_handler._queue_autovacuum(text) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler._queue_autovacuum(text) IS
    'Internal, for the queue changes: gives the named pgmq queue''s table and archive their autovacuum storage parameters (_queue_autovacuum_options). Returns nothing. Raises 42P01 for a queue that does not exist.';

CREATE FUNCTION whatsapp_handler._queue_tables()
RETURNS TABLE (queue_name text, relation regclass, kind text)
LANGUAGE sql STABLE
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
    SELECT m.queue_name::text, to_regclass(format('pgmq.%I', k || '_' || m.queue_name)), k
    FROM pgmq.meta m, unnest(ARRAY['q', 'a']) k
    WHERE to_regclass(format('pgmq.%I', k || '_' || m.queue_name)) IS NOT NULL
$$;
REVOKE ALL ON FUNCTION whatsapp_handler._queue_tables() FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler._queue_tables() IS
    'Internal: the table (kind q) and archive (kind a) of every pgmq queue of this database. Raises nothing.';

SELECT whatsapp_handler._queue_autovacuum(queue_name) FROM pgmq.meta;

COMMIT;
