-- Deploy whatsapp_handler:core/vacuum_metrics to pg
-- requires: core/autovacuum queue/autovacuum core/roles
-- vacuum_metrics(): dead rows, autovacuum and an estimate of bloat of every table that has its own
-- autovacuum settings (the hot tables' partitions, the queue tables), for /metrics and doctor.
BEGIN;
SET LOCAL ROLE whatsapp_handler_owner;

CREATE FUNCTION whatsapp_handler.vacuum_metrics()
RETURNS TABLE (table_name text, dead_tuples bigint, live_tuples bigint, last_autovacuum timestamptz,
               autovacuum_count bigint, table_bytes bigint, bloat_bytes bigint)
LANGUAGE sql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
    WITH t AS (
        SELECT relation AS oid FROM _autovacuum_tables()
        UNION
        SELECT relation FROM _queue_tables()
    )
    SELECT format('%I.%I', s.schemaname, s.relname), s.n_dead_tup, s.n_live_tup, s.last_autovacuum,
           s.autovacuum_count, pg_relation_size(t.oid),
           -- The table's size less what its live rows need by the statistics of the last ANALYZE
           -- (docs/database.md#vacuum says what this estimate leaves out).
           CASE WHEN w.width IS NOT NULL THEN greatest(0, pg_relation_size(t.oid)
               - ceil(s.n_live_tup / floor((current_setting('block_size')::int - 24)
                                           * coalesce(f.fillfactor, 100) / 100.0 / w.width))
                 * current_setting('block_size')::bigint)::bigint
           END
    FROM t
    JOIN pg_stat_user_tables s ON s.relid = t.oid
    JOIN pg_class c ON c.oid = t.oid
    -- A row's header (23 bytes, aligned to 24), its line pointer (4) and its columns, aligned to 8.
    LEFT JOIN LATERAL (
        SELECT (ceil((24 + sum(st.avg_width)) / 8.0) * 8 + 4)::numeric AS width
        FROM pg_stats st WHERE st.schemaname = s.schemaname AND st.tablename = s.relname
        HAVING count(*) > 0
    ) w ON true
    LEFT JOIN LATERAL (
        SELECT split_part(o, '=', 2)::int AS fillfactor FROM unnest(c.reloptions) o WHERE o LIKE 'fillfactor=%'
    ) f ON true
    ORDER BY 1
$$;
REVOKE ALL ON FUNCTION whatsapp_handler.vacuum_metrics() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION whatsapp_handler.vacuum_metrics() TO whatsapp_handler_relay;
COMMENT ON FUNCTION whatsapp_handler.vacuum_metrics() IS
    'For /metrics and doctor: per table with its own autovacuum settings (each partition of a hot table, each queue table and archive), as schema.table: its dead and live rows, last autovacuum and their count (pg_stat_user_tables), its size (main fork) and an estimate of its bloat in bytes: the size less what its live rows need by the average column widths of the last ANALYZE (NULL before one). Raises nothing.';

COMMIT;
