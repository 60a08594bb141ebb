-- Deploy whatsapp_handler:jobs/partitions to pg
-- requires: jobs/settings core/partitions ingest/webhook_events messages/messages messages/status_events
-- Partition maintenance, the body of the cron job `whatsapp_handler.partitions`:
-- partitions made ahead, and partitions wholly past retention dropped (never rows
-- deleted). A plain DROP TABLE takes an ACCESS EXCLUSIVE lock on the parent for a
-- moment (DETACH ... CONCURRENTLY cannot run in a function), so each DDL waits at
-- most lock_timeout and a partition it could not lock is left for the next run
-- rather than stalling ingestion behind a long query.
BEGIN;
SET LOCAL ROLE whatsapp_handler_owner;

CREATE FUNCTION whatsapp_handler.job_partitions()
RETURNS jsonb
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, whatsapp_handler, pg_temp
SET lock_timeout = '5s'
AS $$
DECLARE
    v_table     record;
    v_ahead     integer;
    v_retention interval;
    v_start     timestamptz;
    v_from      timestamptz;
    v_name      text;
    v_part      record;
    v_created   text[];
    v_dropped   text[];
    v_blocked   text[];
    v_result    jsonb := '{}';
    v_error     text;
    v_default   regclass;
    v_default_rows boolean;
BEGIN
    FOR v_table IN
        SELECT * FROM (VALUES ('webhook_events', 'day'), ('messages', 'month'), ('message_status_events', 'month')) t(name, step)
    LOOP
        v_ahead := _setting_integer('partitions.' || v_table.name || '.ahead', 0, 400);
        v_retention := _setting_interval('retention.' || v_table.name, interval '1 day');
        v_created := '{}';
        v_dropped := '{}';
        v_blocked := '{}';

        -- Ahead: the current period and the v_ahead after it, as create_partitions makes
        -- them, but one at a time so that one blocked range does not stop the others.
        v_start := date_trunc(v_table.step, now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
        FOR n IN 0 .. v_ahead LOOP
            v_from := v_start + n * ('1 ' || v_table.step)::interval;
            v_name := v_table.name || '_p' || to_char(v_from AT TIME ZONE 'UTC', 'YYYYMMDD');
            CONTINUE WHEN to_regclass(format('whatsapp_handler.%I', v_name)) IS NOT NULL;
            BEGIN
                PERFORM create_partition(format('whatsapp_handler.%I', v_table.name)::regclass,
                                         v_from, v_from + ('1 ' || v_table.step)::interval);
                v_created := v_created || v_name;
            EXCEPTION WHEN SQLSTATE 'WH010' OR lock_not_available THEN
                -- Rows for this range already sit in the default partition (the job did not
                -- run in time), or the parent stayed locked: reported, tried again next run.
                GET STACKED DIAGNOSTICS v_error = MESSAGE_TEXT;
                v_blocked := v_blocked || v_name;
                RAISE WARNING 'partition % not created: %', v_name, v_error;
            END;
        END LOOP;

        -- Past retention: a partition goes once its upper bound is older than the period.
        -- The default partition has no bound and is never dropped.
        IF v_retention IS NOT NULL THEN
            FOR v_part IN
                SELECT b.part, b.part::text AS name, b.upper
                FROM (SELECT t.relid::regclass AS part,
                             (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'TO \(''([^'']+)''\)'))[1]::timestamptz AS upper
                      FROM pg_partition_tree(format('whatsapp_handler.%I', v_table.name)::regclass) t
                      JOIN pg_class c ON c.oid = t.relid
                      WHERE t.level = 1 AND t.isleaf) b
                WHERE b.upper <= now() - v_retention
                ORDER BY b.upper
            LOOP
                BEGIN
                    EXECUTE format('DROP TABLE %s', v_part.part);
                    v_dropped := v_dropped || v_part.name;
                EXCEPTION WHEN lock_not_available THEN
                    v_blocked := v_blocked || v_part.name;
                    RAISE WARNING 'partition % not dropped: its table stayed locked for lock_timeout', v_part.part;
                END;
            END LOOP;
        END IF;

        -- Rows in the default partition mean partitions were missing when they arrived.
        SELECT t.relid::regclass INTO v_default
        FROM pg_partition_tree(format('whatsapp_handler.%I', v_table.name)::regclass) t
        JOIN pg_class c ON c.oid = t.relid
        WHERE t.level = 1 AND pg_get_expr(c.relpartbound, c.oid) = 'DEFAULT';
        v_default_rows := false;
        IF v_default IS NOT NULL THEN
            EXECUTE format('SELECT EXISTS (SELECT FROM %s)', v_default) INTO v_default_rows;
        END IF;

        v_result := v_result || jsonb_build_object(v_table.name, jsonb_build_object(
            'created', to_jsonb(v_created), 'dropped', to_jsonb(v_dropped), 'blocked', to_jsonb(v_blocked),
            'default_has_rows', v_default_rows));
    END LOOP;
    RETURN v_result;
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler.job_partitions() FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler.job_partitions() IS
    'Partition maintenance (cron job whatsapp_handler.partitions): for webhook_events (daily), messages and message_status_events (monthly) makes the current partition and partitions.<table>.ahead more, and DROPs every partition whose upper bound is older than retention.<table> (the default partitions are never dropped, no rows are deleted). Returns {<table>: {created: [names], dropped: [names], blocked: [names], default_has_rows}}; blocked lists ranges whose rows already sit in the default partition and partitions not locked within lock_timeout (5 s), tried again at the next run. Raises WH011 or WH020 for a missing or malformed setting.';

COMMIT;
