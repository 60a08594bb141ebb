-- Deploy whatsapp_handler:core/autovacuum to pg
-- requires: core/schema users/users messages/messages delivery/pacing
-- Autovacuum per hot table (docs/database.md#vacuum): the tables a message updates, whose dead
-- rows PostgreSQL's defaults let grow to a fifth of the table before a vacuum. The queue tables
-- have their own (queue/autovacuum). A partitioned table holds no storage parameters: they go on
-- each partition, and create_partition gives them to every partition it makes (_set_autovacuum).
BEGIN;
SET LOCAL ROLE whatsapp_handler_owner;

-- The one home of which tables are hot and what they get; measured with bench/vacuum_bench.py.
CREATE FUNCTION whatsapp_handler._autovacuum_hot_tables()
RETURNS TABLE (hot_table regclass, options text[])
LANGUAGE sql STABLE
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
    VALUES
        -- Every inbound message touches its person (_touch_activity): a whole-table update in
        -- a day; the default waits for a fifth of all people to be dead rows.
        ('whatsapp_handler.users'::regclass,
         ARRAY['autovacuum_vacuum_scale_factor=0.02', 'autovacuum_vacuum_threshold=1000',
               'autovacuum_analyze_scale_factor=0.05']),
        -- An outbound message is updated by each status (sent, delivered, read); a partition
        -- is a month, and grows from empty, so it is analysed and its visibility map set often.
        ('whatsapp_handler.messages'::regclass,
         ARRAY['autovacuum_vacuum_scale_factor=0.02', 'autovacuum_vacuum_threshold=1000',
               'autovacuum_vacuum_insert_scale_factor=0.05', 'autovacuum_analyze_scale_factor=0.02']),
        -- One row per channel, updated by every claim: tiny, so vacuumed at every visit, unthrottled.
        ('whatsapp_handler.pacing_channels'::regclass,
         ARRAY['autovacuum_vacuum_scale_factor=0', 'autovacuum_vacuum_threshold=200',
               'autovacuum_vacuum_cost_delay=0']),
        -- One row per (channel, person) written to, updated by each send to them.
        ('whatsapp_handler.pacing_pairs'::regclass,
         ARRAY['autovacuum_vacuum_scale_factor=0.02', 'autovacuum_vacuum_threshold=1000',
               'autovacuum_analyze_scale_factor=0.05'])
$$;
REVOKE ALL ON FUNCTION whatsapp_handler._autovacuum_hot_tables() FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler._autovacuum_hot_tables() IS
    'Internal: the hot tables (a partitioned one by its parent) and the autovacuum storage parameters each of their tables gets (docs/database.md#vacuum). Raises nothing.';

CREATE FUNCTION whatsapp_handler._autovacuum_tables()
RETURNS TABLE (relation regclass, options text[])
LANGUAGE sql STABLE
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
    SELECT coalesce(l.relid, h.hot_table), h.options
    FROM _autovacuum_hot_tables() h
    LEFT JOIN LATERAL (SELECT t.relid FROM pg_partition_tree(h.hot_table) t WHERE t.isleaf) l ON true
$$;
REVOKE ALL ON FUNCTION whatsapp_handler._autovacuum_tables() FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler._autovacuum_tables() IS
    'Internal: every table that holds the autovacuum settings of a hot table (the table itself, or each partition of a partitioned one) with those settings. Raises nothing.';

CREATE FUNCTION whatsapp_handler._set_autovacuum(p_table regclass)
RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
DECLARE
    v_options text[];
    v_leaf    regclass;
BEGIN
    IF (SELECT relkind FROM pg_class WHERE oid = p_table) = 'p' THEN
        FOR v_leaf IN SELECT relid FROM pg_partition_tree(p_table) WHERE isleaf LOOP
            PERFORM _set_autovacuum(v_leaf);
        END LOOP;
        RETURN EXISTS (SELECT FROM _autovacuum_hot_tables() h WHERE h.hot_table = p_table);
    END IF;
    SELECT h.options INTO v_options
    FROM _autovacuum_hot_tables() h
    WHERE h.hot_table = p_table
       OR h.hot_table = (SELECT i.inhparent FROM pg_inherits i WHERE i.inhrelid = p_table);
    IF v_options IS NULL THEN
        RETURN false;
    END IF;
    EXECUTE format('ALTER TABLE %s SET (%s)', p_table, array_to_string(v_options, ', '));
    RETURN true;
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler._set_autovacuum(regclass) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler._set_autovacuum(regclass) IS
    'Internal (this deploy, create_partition): gives a hot table, or a partition of one, its autovacuum storage parameters (_autovacuum_hot_tables); a partitioned table passes them to each of its partitions. Returns whether the table is hot. Raises what ALTER TABLE raises (the caller must own the table).';

SELECT whatsapp_handler._set_autovacuum(hot_table) FROM whatsapp_handler._autovacuum_hot_tables();

COMMIT;
