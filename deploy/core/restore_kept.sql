-- Deploy whatsapp_handler:core/restore_kept to pg
-- requires: core/settings core/channels conversation/reply_texts jobs/jobs analytics/analyst_channels analytics/refresh_schedule analytics/analyst_guard_schedule otp/request_otp ingest/success_rate
-- A revert hands what a DBA set (settings, reply texts, job schedules, channels, analyst
-- scopes) to schema whatsapp_handler_kept (revert/kept.sql) before dropping it. This change,
-- last of a deploy, puts those rows back and drops the schema, so that a revert and a redeploy
-- leave the DBA's values as they were.
--
-- A kept value never overwrites a value someone set since: a row is restored only while it
-- is as the deploy wrote it. A row written by a deploy carries the id of a transaction that
-- also wrote the catalog (it created or granted something), a DBA's UPDATE one that did not;
-- so after a revert, a deploy of an older release and a DBA's changes, the upgrade to this
-- change keeps the DBA's changes, and says which kept values it set aside. Channels come back
-- only into an empty table (channels added since win), with their ids, so that analyst scopes
-- and the relay's channel ids still mean the same numbers; a scope's ids are matched by
-- provider and provider_ref all the same.
--
-- Run as the deploying superuser, not as the owner: the jobs' trigger schedules pg_cron jobs
-- for whatsapp_handler_cron, which only a superuser may do, and the kept schema is its own.
BEGIN;

DO $$
DECLARE
    v_deployed bigint[];
    k          record;
    v_restored integer := 0;
    v_set_aside integer := 0;
    v_ids      bigint[];
    v_unmapped bigint[];
BEGIN
    IF to_regclass('whatsapp_handler_kept.rows') IS NULL THEN
        RETURN;
    END IF;
    LOCK TABLE whatsapp_handler_kept.rows;

    SELECT array_agg(x) INTO v_deployed FROM (
        SELECT xmin::text::bigint AS x FROM pg_catalog.pg_class
        UNION SELECT xmin::text::bigint FROM pg_catalog.pg_proc
        UNION SELECT xmin::text::bigint FROM pg_catalog.pg_type
        UNION SELECT xmin::text::bigint FROM pg_catalog.pg_depend
        UNION SELECT xmin::text::bigint FROM pg_catalog.pg_description
        UNION SELECT xmin::text::bigint FROM pg_catalog.pg_shdepend
              WHERE dbid = (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database())
    ) t;

    -- Settings and reply texts: the deploy wrote them afresh; a DBA's value goes back on top,
    -- and a key the DBA added comes back whole.
    FOR k IN SELECT r.key, r.row FROM whatsapp_handler_kept.rows r WHERE r.kind = 'setting' ORDER BY r.key LOOP
        UPDATE whatsapp_handler.settings s
        SET value = k.row->'value', updated_at = (k.row->>'updated_at')::timestamptz
        WHERE s.key = k.key AND s.value IS DISTINCT FROM k.row->'value' AND s.xmin::text::bigint = ANY (v_deployed);
        IF FOUND THEN
            v_restored := v_restored + 1;
        ELSIF NOT EXISTS (SELECT FROM whatsapp_handler.settings WHERE key = k.key) THEN
            INSERT INTO whatsapp_handler.settings (key, value, description, updated_at)
            VALUES (k.key, k.row->'value', k.row->>'description', (k.row->>'updated_at')::timestamptz);
            v_restored := v_restored + 1;
        ELSIF EXISTS (SELECT FROM whatsapp_handler.settings WHERE key = k.key AND value IS DISTINCT FROM k.row->'value') THEN
            RAISE NOTICE 'setting % keeps its value: it was changed after the deploy that made it (the revert had kept %)',
                         k.key, k.row->'value';
            v_set_aside := v_set_aside + 1;
        END IF;
    END LOOP;

    FOR k IN SELECT r.row FROM whatsapp_handler_kept.rows r WHERE r.kind = 'reply_text' ORDER BY r.key LOOP
        UPDATE whatsapp_handler.reply_texts t SET body = k.row->>'body'
        WHERE t.key = k.row->>'key' AND t.language = k.row->>'language' AND t.body <> k.row->>'body'
          AND t.xmin::text::bigint = ANY (v_deployed);
        IF FOUND THEN
            v_restored := v_restored + 1;
        ELSIF NOT EXISTS (SELECT FROM whatsapp_handler.reply_texts WHERE key = k.row->>'key' AND language = k.row->>'language') THEN
            INSERT INTO whatsapp_handler.reply_texts (key, language, body)
            VALUES (k.row->>'key', k.row->>'language', k.row->>'body');
            v_restored := v_restored + 1;
        ELSIF EXISTS (SELECT FROM whatsapp_handler.reply_texts
                      WHERE key = k.row->>'key' AND language = k.row->>'language' AND body <> k.row->>'body') THEN
            RAISE NOTICE 'reply text %/% keeps its body: it was changed after the deploy that made it',
                         k.row->>'key', k.row->>'language';
            v_set_aside := v_set_aside + 1;
        END IF;
    END LOOP;

    -- Jobs: a DBA changes schedule and enabled; the trigger brings cron.job along.
    FOR k IN SELECT r.key, r.row FROM whatsapp_handler_kept.rows r WHERE r.kind = 'job' ORDER BY r.key LOOP
        UPDATE whatsapp_handler.jobs j SET schedule = k.row->>'schedule', enabled = (k.row->>'enabled')::boolean
        WHERE j.name = k.key AND (j.schedule, j.enabled) IS DISTINCT FROM (k.row->>'schedule', (k.row->>'enabled')::boolean)
          AND j.xmin::text::bigint = ANY (v_deployed);
        IF FOUND THEN
            v_restored := v_restored + 1;
        ELSIF NOT EXISTS (SELECT FROM whatsapp_handler.jobs WHERE name = k.key) THEN
            BEGIN
                INSERT INTO whatsapp_handler.jobs (name, function, schedule, enabled, description)
                VALUES (k.key, k.row->>'function', k.row->>'schedule', (k.row->>'enabled')::boolean, k.row->>'description');
                v_restored := v_restored + 1;
            EXCEPTION WHEN OTHERS THEN
                RAISE NOTICE 'job % not restored: %', k.key, SQLERRM;
                v_set_aside := v_set_aside + 1;
            END;
        ELSIF EXISTS (SELECT FROM whatsapp_handler.jobs WHERE name = k.key
                      AND (schedule, enabled) IS DISTINCT FROM (k.row->>'schedule', (k.row->>'enabled')::boolean)) THEN
            RAISE NOTICE 'job % keeps its schedule: it was changed after the deploy that made it (the revert had kept % %)',
                         k.key, k.row->>'schedule', CASE WHEN (k.row->>'enabled')::boolean THEN 'enabled' ELSE 'disabled' END;
            v_set_aside := v_set_aside + 1;
        END IF;
    END LOOP;

    -- Channels, with their ids, into an empty table only.
    IF EXISTS (SELECT FROM whatsapp_handler_kept.rows WHERE kind = 'channel') THEN
        IF NOT EXISTS (SELECT FROM whatsapp_handler.channels) THEN
            INSERT INTO whatsapp_handler.channels (id, provider, provider_ref, phone, name, active, brand, created_at)
            OVERRIDING SYSTEM VALUE
            SELECT (r.row->>'id')::bigint, (r.row->>'provider')::whatsapp_handler.provider, r.row->>'provider_ref',
                   r.row->>'phone', r.row->>'name', (r.row->>'active')::boolean, r.row->>'brand',
                   (r.row->>'created_at')::timestamptz
            FROM whatsapp_handler_kept.rows r WHERE r.kind = 'channel';
            PERFORM pg_catalog.setval(pg_catalog.pg_get_serial_sequence('whatsapp_handler.channels', 'id'),
                                      (SELECT max(id) FROM whatsapp_handler.channels));
            v_restored := v_restored + (SELECT count(*) FROM whatsapp_handler.channels)::integer;
        ELSE
            FOR k IN SELECT r.row FROM whatsapp_handler_kept.rows r WHERE r.kind = 'channel'
                     AND NOT EXISTS (SELECT FROM whatsapp_handler.channels c
                                     WHERE c.provider::text = r.row->>'provider' AND c.provider_ref = r.row->>'provider_ref') LOOP
                RAISE NOTICE 'channel % % not restored: channels were added since the revert (whatsapp_handler.add_channel adds it)',
                             k.row->>'provider', k.row->>'provider_ref';
                v_set_aside := v_set_aside + 1;
            END LOOP;
        END IF;
    END IF;

    -- Analyst scopes, for logins that still exist and have none now; each kept channel id is
    -- carried to the channel of the same provider and provider_ref, or dropped.
    FOR k IN SELECT r.key, r.row FROM whatsapp_handler_kept.rows r WHERE r.kind = 'analyst' ORDER BY r.key LOOP
        CONTINUE WHEN EXISTS (SELECT FROM whatsapp_handler.analyst_channels WHERE analyst = k.key);
        IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = k.key AND rolcanlogin) THEN
            RAISE NOTICE 'analyst % not restored: the login is gone', k.key;
            v_set_aside := v_set_aside + 1;
            CONTINUE;
        END IF;
        -- A channel the revert did not drop (a revert that stopped above core/channels) kept its id.
        SELECT coalesce(array_agg(DISTINCT c.id ORDER BY c.id) FILTER (WHERE c.id IS NOT NULL), '{}'),
               coalesce(array_agg(e.kept_text::bigint) FILTER (WHERE c.id IS NULL), '{}')
        INTO v_ids, v_unmapped
        FROM jsonb_array_elements_text(k.row->'channel_ids') AS e(kept_text)
        LEFT JOIN whatsapp_handler_kept.rows kc ON kc.kind = 'channel' AND kc.key = e.kept_text
        LEFT JOIN whatsapp_handler.channels c
               ON CASE WHEN kc.row IS NULL THEN c.id = e.kept_text::bigint
                       ELSE c.provider::text = kc.row->>'provider' AND c.provider_ref = kc.row->>'provider_ref' END;
        IF cardinality(v_unmapped) > 0 THEN
            RAISE NOTICE 'analyst % loses channel(s) %: no such channel now', k.key, v_unmapped;
        END IF;
        IF NOT (k.row->>'all_channels')::boolean AND cardinality(v_ids) = 0 THEN
            RAISE NOTICE 'analyst % not restored: none of its channels is here now', k.key;
            v_set_aside := v_set_aside + 1;
            CONTINUE;
        END IF;
        INSERT INTO whatsapp_handler.analyst_channels (analyst, all_channels, channel_ids, created_at, updated_at)
        VALUES (k.key, (k.row->>'all_channels')::boolean, v_ids,
                (k.row->>'created_at')::timestamptz, (k.row->>'updated_at')::timestamptz);
        IF NOT pg_catalog.pg_has_role(k.key, 'whatsapp_handler_analyst', 'MEMBER') THEN
            EXECUTE format('GRANT whatsapp_handler_analyst TO %I', k.key);
        END IF;
        v_restored := v_restored + 1;
    END LOOP;

    RAISE NOTICE 'restored % row(s) a revert had kept, % set aside; schema whatsapp_handler_kept dropped', v_restored, v_set_aside;
    DROP SCHEMA whatsapp_handler_kept CASCADE;
END
$$;

COMMIT;
