-- Deploy whatsapp_handler:core/partitions to pg
-- requires: core/schema
BEGIN;
SET LOCAL ROLE whatsapp_handler_owner;

CREATE FUNCTION whatsapp_handler.create_partition(p_parent regclass, p_from timestamptz, p_to timestamptz)
RETURNS regclass
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
DECLARE
    v_parent   text;
    v_name     text;
    v_existing regclass;
    v_wanted   text;
BEGIN
    SELECT c.relname INTO v_parent
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.oid = p_parent AND c.relkind = 'p' AND n.nspname = 'whatsapp_handler';
    IF v_parent IS NULL THEN
        RAISE EXCEPTION '% is not a partitioned table of whatsapp_handler', p_parent
            USING ERRCODE = 'WH008', HINT = 'Pass one of the partitioned tables, e.g. ''whatsapp_handler.messages''.';
    END IF;
    IF p_from IS NULL OR p_to IS NULL OR p_from >= p_to THEN
        RAISE EXCEPTION 'partition range [%, %) is empty', p_from, p_to
            USING ERRCODE = 'WH008', HINT = 'The lower bound must be before the upper bound.';
    END IF;
    IF date_trunc('day', p_from AT TIME ZONE 'UTC') <> p_from AT TIME ZONE 'UTC' THEN
        RAISE EXCEPTION 'partition bound % is not midnight UTC', p_from
            USING ERRCODE = 'WH008', HINT = 'Partitions are whole days or months: start them at 00:00 UTC.';
    END IF;

    -- Named for its lower bound in UTC, so names sort in time order.
    v_name := v_parent || '_p' || to_char(p_from AT TIME ZONE 'UTC', 'YYYYMMDD');
    v_wanted := format('FOR VALUES FROM (%L) TO (%L)', p_from, p_to);
    v_existing := to_regclass(format('whatsapp_handler.%I', v_name));
    IF v_existing IS NOT NULL THEN
        -- Idempotent: the name encodes the lower bound, so a table of that name that
        -- is a partition of this parent is the one asked for.
        IF NOT EXISTS (SELECT FROM pg_partition_tree(p_parent) t WHERE t.relid = v_existing AND t.level = 1) THEN
            RAISE EXCEPTION '% exists but is not a partition of %', v_name, v_parent
                USING ERRCODE = 'WH010', HINT = 'Rename or drop the stray table, then try again.';
        END IF;
        RETURN v_existing;
    END IF;

    BEGIN
        EXECUTE format('CREATE TABLE whatsapp_handler.%I PARTITION OF whatsapp_handler.%I %s',
                       v_name, v_parent, v_wanted);
    EXCEPTION WHEN invalid_object_definition OR check_violation THEN
        RAISE EXCEPTION 'cannot create partition % of %: %', v_name, v_parent, SQLERRM
            USING ERRCODE = 'WH010',
                  HINT = 'The range overlaps an existing partition, or rows for it already sit in the default partition.';
    END;
    RETURN format('whatsapp_handler.%I', v_name)::regclass;
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler.create_partition(regclass, timestamptz, timestamptz) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler.create_partition(regclass, timestamptz, timestamptz) IS
    'Creates (or finds) the partition of a whatsapp_handler partitioned table for [p_from, p_to), named <table>_pYYYYMMDD after its lower bound, which must be midnight UTC; returns it. Raises WH008 for a non-partitioned table, an empty range or a bound off midnight UTC, WH010 when the range overlaps another partition or rows in the default partition.';

CREATE FUNCTION whatsapp_handler.create_partitions(p_parent regclass, p_step text, p_ahead integer)
RETURNS SETOF regclass
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
DECLARE
    v_start timestamptz;
BEGIN
    IF p_step IS NULL OR p_step NOT IN ('day', 'month') OR p_ahead IS NULL OR p_ahead NOT BETWEEN 0 AND 400 THEN
        RAISE EXCEPTION 'partition step % ahead % is not supported', p_step, p_ahead
            USING ERRCODE = 'WH008', HINT = 'Step is day or month; ahead is 0 to 400 periods.';
    END IF;
    v_start := date_trunc(p_step, now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
    RETURN QUERY
    SELECT create_partition(p_parent, v_start + n * ('1 ' || p_step)::interval, v_start + (n + 1) * ('1 ' || p_step)::interval)
    FROM generate_series(0, p_ahead) AS n;
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler.create_partitions(regclass, text, integer) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler.create_partitions(regclass, text, integer) IS
    'Creates (or finds) the partitions of the current UTC day or month and of the p_ahead periods after it; returns them. Raises WH008 for an unknown step or a count outside 0-400, and what create_partition raises.';

COMMIT;
