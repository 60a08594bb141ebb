-- Moves a database of the seeds' "phase-2" shape (users, user_preferences, outbox_events,
-- webhook_dlq, dlq_processing_log, wa_events; docs/migrating.md says which shape) into this
-- service's schema, deployed by sqitch to the checkout's plan, in one transaction.
--
--   psql "$URL" -v ON_ERROR_STOP=1 -v source=phase2 -v channel=1 -f sql/migrate_phase2.sql
--
-- source:  the schema holding the old tables (restored there from the old database's dump).
-- channel: the id of the channel (whatsapp_handler.channels) the old number is now: every
--          person gets a conversation on it and the old messages are filed under it.
-- Run it as the superuser that deploys (it calls the queue layer's internal functions).
--
-- Nothing is announced: no user.registered for the people imported (docs/migrating.md). The
-- old outbox's unpublished user events go onto the outbox queue in this service's envelope,
-- unresolved webhook dead letters into inbound_dlq, parked. Every source row that is not
-- carried as it was is listed in <source>.wh_migration_report; <source>.wh_user_ids maps
-- the old user ids to the new ones; <source>.wh_migration records the run, and its presence
-- makes a second run refuse, changing nothing. Phone numbers are never printed.

\set ON_ERROR_STOP on
\set QUIET on
\if :{?source}
\else
DO $$ BEGIN RAISE EXCEPTION 'no source schema: pass -v source=SCHEMA (and -v channel=CHANNEL_ID)'; END $$;
\endif
\if :{?channel}
\else
DO $$ BEGIN RAISE EXCEPTION 'no channel: pass -v channel=CHANNEL_ID, the id of the old number''s channel here'; END $$;
\endif

BEGIN;
-- Two runs at once: the second waits here, then finds the first's marker and refuses.
SELECT pg_advisory_xact_lock(hashtext('whatsapp_handler:migrate_phase2')) \gset
SELECT set_config('wh_migrate.source', :'source', true) AS p2_source,
       set_config('wh_migrate.channel', :'channel', true) AS p2_channel \gset

-- 1. Refuse before touching anything: a target not deployed, an unknown channel, a source
--    missing a table or a column the mapping needs, a source already migrated.
DO $check$
DECLARE
    v_source  text := current_setting('wh_migrate.source');
    v_channel text := current_setting('wh_migrate.channel');
    v_missing text;
    v_when    timestamptz;
    -- Each table and the columns it must have: the fewest of the shapes docs/migrating.md names.
    v_needs   jsonb := '{
        "users": ["id", "phone_number"],
        "user_preferences": ["user_id"],
        "outbox_events": ["id", "aggregate_type", "aggregate_id", "event_type", "payload", "published_at", "created_at"],
        "webhook_dlq": ["id", "payload", "status", "created_at"],
        "dlq_processing_log": ["id"],
        "wa_events": ["id", "created_at", "message_id", "direction", "phone_number"]
    }';
    v_table   text;
BEGIN
    IF to_regclass('whatsapp_handler.users') IS NULL
       OR to_regprocedure('whatsapp_handler._enqueue_outbox(jsonb[], text[])') IS NULL
       OR to_regprocedure('whatsapp_handler._dead_letter_inbound(jsonb)') IS NULL
       OR to_regprocedure('whatsapp_handler._mark_inbound_letter(bigint, jsonb, interval)') IS NULL
       OR to_regprocedure('whatsapp_handler._event_envelope(text, bigint, jsonb, text)') IS NULL
       OR NOT EXISTS (SELECT FROM pg_attribute WHERE attrelid = 'whatsapp_handler.users'::regclass
                      AND attname = 'onboarded_at' AND NOT attisdropped) THEN
        RAISE EXCEPTION 'this database does not hold the whatsapp_handler schema this script is written for'
            USING HINT = 'Deploy the checkout''s plan first (sqitch deploy, or whatsapp-handler db deploy), then run the script from the same checkout.';
    END IF;
    IF v_channel !~ '^[0-9]{1,18}$'
       OR NOT EXISTS (SELECT FROM whatsapp_handler.channels WHERE id = v_channel::bigint AND active) THEN
        RAISE EXCEPTION 'channel % is not an active channel of this database', v_channel
            USING HINT = 'Add the old number as a channel first (whatsapp_handler.add_channel) and pass its id: -v channel=ID.';
    END IF;
    IF NOT EXISTS (SELECT FROM pg_namespace WHERE nspname = v_source) THEN
        RAISE EXCEPTION 'schema % does not exist', v_source
            USING HINT = 'Restore the old tables into a schema of this database and pass its name: -v source=NAME.';
    END IF;
    IF to_regclass(format('%I.wh_migration', v_source)) IS NOT NULL THEN
        EXECUTE format('SELECT max(migrated_at) FROM %I.wh_migration', v_source) INTO v_when;
        RAISE EXCEPTION 'schema % was already migrated (at %); nothing was changed', v_source, v_when
            USING HINT = 'Its people, events and dead letters are here already: running again would queue its events twice. Read ' || v_source || '.wh_migration_report.';
    END IF;
    FOR v_table IN SELECT jsonb_object_keys(v_needs) LOOP
        IF to_regclass(format('%I.%I', v_source, v_table)) IS NULL THEN
            RAISE EXCEPTION 'table %.% is missing; nothing was changed', v_source, v_table
                USING HINT = 'Restore it from the old database, or create it empty if that system never had it (docs/migrating.md).';
        END IF;
        SELECT string_agg(c, ', ') INTO v_missing
        FROM jsonb_array_elements_text(v_needs -> v_table) c
        WHERE NOT EXISTS (SELECT FROM pg_attribute a
                          WHERE a.attrelid = format('%I.%I', v_source, v_table)::regclass
                            AND a.attname = c AND a.attnum > 0 AND NOT a.attisdropped);
        IF v_missing IS NOT NULL THEN
            RAISE EXCEPTION 'table %.% has no column %; nothing was changed', v_source, v_table, v_missing
                USING HINT = 'The script reads the shape docs/migrating.md describes; rename the column in the source, or adapt the script.';
        END IF;
    END LOOP;
    IF NOT EXISTS (SELECT FROM pg_attribute a
                   WHERE a.attrelid = format('%I.user_preferences', v_source)::regclass AND NOT a.attisdropped
                     AND a.attname IN ('preference_key', 'language', 'timezone', 'notification_enabled',
                                       'notifications_enabled', 'delay_threshold_minutes', 'auto_claim_enabled', 'auto_claim')) THEN
        RAISE EXCEPTION 'table %.user_preferences is neither of the known shapes; nothing was changed', v_source
            USING HINT = 'Either typed columns (language, timezone, ...) or key-value rows (preference_key, preference_value): docs/migrating.md.';
    END IF;
END
$check$;

-- What the run leaves in the source schema: the marker, the id map, the report.
CREATE TABLE :"source".wh_migration (
    migrated_at timestamptz NOT NULL DEFAULT now(),
    channel_id  bigint NOT NULL,
    counts      jsonb
);
CREATE TABLE :"source".wh_user_ids (
    source_id text PRIMARY KEY,
    user_id   bigint NOT NULL,
    outcome   text NOT NULL CHECK (outcome IN ('imported', 'merged', 'existing'))
);
CREATE TABLE :"source".wh_migration_report (
    source_table text NOT NULL,
    source_id    text,
    outcome      text NOT NULL,
    detail       text
);
INSERT INTO :"source".wh_migration (channel_id) VALUES (:'channel');

-- 2. The source read into temporary tables of one shape each, whichever of the known
--    shapes (and optional columns) it has. Everything after reads these.
CREATE FUNCTION pg_temp.p2_col(p_table text, p_cols text[], p_type text)
RETURNS text LANGUAGE sql STABLE AS $$
    -- The first of p_cols the source table has, cast; a typed NULL when it has none.
    SELECT coalesce((SELECT format('%I::%s', c, p_type)
                     FROM unnest(p_cols) WITH ORDINALITY AS x(c, i)
                     WHERE EXISTS (SELECT FROM pg_attribute a
                                   WHERE a.attrelid = format('%I.%I', current_setting('wh_migrate.source'), p_table)::regclass
                                     AND a.attname = c AND a.attnum > 0 AND NOT a.attisdropped)
                     ORDER BY i LIMIT 1),
                    format('NULL::%s', p_type))
$$;

-- A phone number as E.164, or NULL when it cannot be one without guessing: formatting
-- (spaces, dots, dashes, brackets), Twilio's whatsapp: prefix and the international 00
-- prefix are undone; a number without + or 00 is refused (447700900123 and a national
-- 07700900123 cannot be told apart by shape). The shape test is the project's own.
CREATE FUNCTION pg_temp.p2_phone(p_raw text)
RETURNS text LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    v text := regexp_replace(regexp_replace(btrim(p_raw), '^whatsapp:', '', 'i'), '[[:space:]().-]', '', 'g');
BEGIN
    IF v ~ '^00[1-9]' THEN
        v := '+' || substr(v, 3);
    END IF;
    RETURN CASE WHEN whatsapp_handler._is_e164(v) THEN v END;
END
$$;

CREATE FUNCTION pg_temp.p2_bool(p_value text)
RETURNS boolean LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN lower(btrim(p_value)) IN ('true', 't', 'yes', 'y', 'on', '1') THEN true
                WHEN lower(btrim(p_value)) IN ('false', 'f', 'no', 'n', 'off', '0') THEN false END
$$;

CREATE TEMPORARY TABLE p2_users (
    source_id text, phone_raw text, display_name text, otp_present boolean, verified_at timestamptz,
    otp_verified_at timestamptz, last_active_at timestamptz, terms_accepted_at timestamptz, terms_version text,
    blocked_at timestamptz, blocked_reason text, created_at timestamptz, updated_at timestamptz
) ON COMMIT DROP;
CREATE TEMPORARY TABLE p2_prefs (
    source_user_id text, notifications_enabled text, language text, timezone text,
    delay_threshold_minutes text, auto_claim text, updated_at timestamptz
) ON COMMIT DROP;
CREATE TEMPORARY TABLE p2_pref_keys (
    source_id text, source_user_id text, preference_key text, preference_value text, updated_at timestamptz
) ON COMMIT DROP;
CREATE TEMPORARY TABLE p2_outbox (
    source_id text, aggregate_type text, aggregate_id text, event_type text, event_version text,
    payload jsonb, correlation_id text, published_at timestamptz, created_at timestamptz
) ON COMMIT DROP;
CREATE TEMPORARY TABLE p2_dlq (
    source_id text, payload jsonb, status text, error_message text, correlation_id text,
    retry_count integer, created_at timestamptz
) ON COMMIT DROP;
CREATE TEMPORARY TABLE p2_wa (
    source_id text, created_at timestamptz, message_id text, direction text, phone_raw text,
    status text, payload jsonb, correlation_id text
) ON COMMIT DROP;

DO $read$
DECLARE
    v_source text := current_setting('wh_migrate.source');
BEGIN
    EXECUTE format(
        'INSERT INTO p2_users SELECT id::text, phone_number::text, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s FROM %I.users',
        pg_temp.p2_col('users', '{display_name}', 'text'),
        -- A stored OTP in any of the names it had, plaintext or hash: only whether there was one.
        replace(pg_temp.p2_col('users', '{otp_secret,otp_code,otp_hash,otp_code_hash}', 'text'), '::text', '::text IS NOT NULL'),
        pg_temp.p2_col('users', '{verified_at}', 'timestamptz'),
        pg_temp.p2_col('users', '{otp_verified_at}', 'timestamptz'),
        pg_temp.p2_col('users', '{last_active_at}', 'timestamptz'),
        pg_temp.p2_col('users', '{terms_accepted_at}', 'timestamptz'),
        pg_temp.p2_col('users', '{terms_version}', 'text'),
        pg_temp.p2_col('users', '{blocked_at}', 'timestamptz'),
        pg_temp.p2_col('users', '{block_reason,blocked_reason}', 'text'),
        pg_temp.p2_col('users', '{created_at}', 'timestamptz'),
        pg_temp.p2_col('users', '{updated_at}', 'timestamptz'),
        v_source);
    IF EXISTS (SELECT FROM pg_attribute WHERE attrelid = format('%I.user_preferences', v_source)::regclass
               AND attname = 'preference_key' AND NOT attisdropped) THEN
        EXECUTE format('INSERT INTO p2_pref_keys SELECT %s, user_id::text, preference_key::text, %s, %s FROM %I.user_preferences',
            pg_temp.p2_col('user_preferences', '{id}', 'text'),
            pg_temp.p2_col('user_preferences', '{preference_value}', 'text'),
            pg_temp.p2_col('user_preferences', '{updated_at}', 'timestamptz'),
            v_source);
        -- Key-value rows pivoted to the typed shape; a key twice for one person (it cannot be
        -- under their unique key, but a copy may lack it) keeps the last written.
        INSERT INTO p2_prefs
        SELECT source_user_id,
               (array_agg(preference_value ORDER BY updated_at DESC NULLS LAST) FILTER (WHERE preference_key IN ('notification_enabled', 'notifications_enabled', 'notifications')))[1],
               (array_agg(preference_value ORDER BY updated_at DESC NULLS LAST) FILTER (WHERE preference_key = 'language'))[1],
               (array_agg(preference_value ORDER BY updated_at DESC NULLS LAST) FILTER (WHERE preference_key = 'timezone'))[1],
               (array_agg(preference_value ORDER BY updated_at DESC NULLS LAST) FILTER (WHERE preference_key = 'delay_threshold_minutes'))[1],
               (array_agg(preference_value ORDER BY updated_at DESC NULLS LAST) FILTER (WHERE preference_key IN ('auto_claim_enabled', 'auto_claim')))[1],
               max(updated_at)
        FROM p2_pref_keys GROUP BY source_user_id;
    ELSE
        EXECUTE format('INSERT INTO p2_prefs SELECT user_id::text, %s, %s, %s, %s, %s, %s FROM %I.user_preferences',
            pg_temp.p2_col('user_preferences', '{notification_enabled,notifications_enabled}', 'text'),
            pg_temp.p2_col('user_preferences', '{language}', 'text'),
            pg_temp.p2_col('user_preferences', '{timezone}', 'text'),
            pg_temp.p2_col('user_preferences', '{delay_threshold_minutes}', 'text'),
            pg_temp.p2_col('user_preferences', '{auto_claim_enabled,auto_claim}', 'text'),
            pg_temp.p2_col('user_preferences', '{updated_at}', 'timestamptz'),
            v_source);
    END IF;
    EXECUTE format(
        'INSERT INTO p2_outbox SELECT id::text, aggregate_type::text, aggregate_id::text, event_type::text, %s, payload::jsonb, %s, published_at, created_at FROM %I.outbox_events',
        pg_temp.p2_col('outbox_events', '{event_version}', 'text'),
        pg_temp.p2_col('outbox_events', '{correlation_id}', 'text'),
        v_source);
    EXECUTE format(
        'INSERT INTO p2_dlq SELECT id::text, payload::jsonb, status::text, %s, %s, %s, created_at FROM %I.webhook_dlq',
        pg_temp.p2_col('webhook_dlq', '{error_message,error,last_error}', 'text'),
        pg_temp.p2_col('webhook_dlq', '{correlation_id}', 'text'),
        pg_temp.p2_col('webhook_dlq', '{retry_count,attempts}', 'integer'),
        v_source);
    EXECUTE format(
        'INSERT INTO p2_wa SELECT id::text, created_at, message_id::text, direction::text, phone_number::text, %s, %s, %s FROM %I.wa_events',
        pg_temp.p2_col('wa_events', '{status,event_type}', 'text'),
        pg_temp.p2_col('wa_events', '{payload}', 'jsonb'),
        pg_temp.p2_col('wa_events', '{correlation_id}', 'text'),
        v_source);
END
$read$;
-- Temporary tables have no statistics until analysed: without them a join of 100,000 rows
-- is planned as a nested loop.
ANALYZE p2_users;
ANALYZE p2_prefs;
ANALYZE p2_pref_keys;
ANALYZE p2_outbox;
ANALYZE p2_dlq;
ANALYZE p2_wa;

-- 3. People. Each source user is one of: carried (imported), the same person as another
--    row under another spelling of the number (merged into the one kept), already known
--    here by that number (existing: mapped, left as it is), refused (the number cannot be
--    E.164), or erased upstream (anonymised: nothing to carry).
CREATE TEMPORARY TABLE p2_people ON COMMIT DROP AS
SELECT u.*,
       CASE WHEN u.phone_raw IS NULL OR u.phone_raw ~* '^anonymi[sz]ed' THEN NULL ELSE pg_temp.p2_phone(u.phone_raw) END AS phone,
       (u.phone_raw IS NULL OR u.phone_raw ~* '^anonymi[sz]ed') AS erased_upstream
FROM p2_users u;

-- One kept per number: the verified one, then the last active, then the first created.
CREATE TEMPORARY TABLE p2_kept ON COMMIT DROP AS
SELECT DISTINCT ON (phone) phone, source_id AS kept_id
FROM p2_people WHERE phone IS NOT NULL
ORDER BY phone, coalesce(verified_at, otp_verified_at) IS NULL, last_active_at DESC NULLS LAST,
         created_at NULLS LAST, source_id;
ANALYZE p2_people;
ANALYZE p2_kept;

INSERT INTO :"source".wh_migration_report (source_table, source_id, outcome, detail)
SELECT 'users', source_id,
       CASE WHEN erased_upstream THEN 'not_carried_erased' ELSE 'refused_phone' END,
       CASE WHEN erased_upstream THEN 'anonymised in the old system'
            ELSE 'not E.164 once formatting is removed (a + or 00, the country code, 7 to 15 digits)' END
FROM p2_people WHERE phone IS NULL;

-- The kept rows of numbers nobody here has yet: their fields from the kept row, the first
-- contact and the last activity from every row of the number.
CREATE TEMPORARY TABLE p2_new ON COMMIT DROP AS
SELECT p.source_id, p.phone,
       left(nullif(btrim(p.display_name), ''), 256) AS display_name,
       coalesce(p.verified_at, p.otp_verified_at) AS verified_at,
       CASE WHEN p.terms_version ~ '^[A-Za-z0-9._-]{1,32}$' AND p.terms_accepted_at IS NOT NULL THEN p.terms_version END AS terms_version,
       CASE WHEN p.terms_version ~ '^[A-Za-z0-9._-]{1,32}$' AND p.terms_accepted_at IS NOT NULL THEN p.terms_accepted_at END AS terms_accepted_at,
       p.blocked_at,
       CASE WHEN p.blocked_at IS NOT NULL THEN left(nullif(btrim(p.blocked_reason), ''), 500) END AS blocked_reason,
       g.last_active_at,
       coalesce(g.created_at, now()) AS created_at,
       coalesce(p.updated_at, g.created_at, now()) AS updated_at,
       (p.terms_version IS NOT NULL OR p.terms_accepted_at IS NOT NULL)
           AND NOT (p.terms_version ~ '^[A-Za-z0-9._-]{1,32}$' AND p.terms_accepted_at IS NOT NULL) AS terms_dropped
FROM p2_people p
JOIN p2_kept k ON k.kept_id = p.source_id
JOIN (SELECT o.phone, min(o.created_at) AS created_at, max(o.last_active_at) AS last_active_at
      FROM p2_people o WHERE o.phone IS NOT NULL GROUP BY o.phone) g ON g.phone = p.phone
WHERE NOT EXISTS (SELECT FROM whatsapp_handler.users u WHERE u.phone = p.phone);

-- Direct inserts: register_user would announce each person (user.registered), which an
-- import must not. The table's constraints hold every rule the insert must meet.
CREATE TEMPORARY TABLE p2_inserted ON COMMIT DROP AS
WITH ins AS (
    INSERT INTO whatsapp_handler.users (phone, display_name, verified_at, onboarded_at, last_active_at,
                                        terms_accepted_at, terms_version, blocked_at, blocked_reason, created_at, updated_at)
    SELECT phone, display_name, verified_at,
           -- Onboarded: terms accepted and phone verified, whichever came last (_complete_onboarding).
           CASE WHEN verified_at IS NOT NULL AND terms_accepted_at IS NOT NULL THEN greatest(verified_at, terms_accepted_at) END,
           last_active_at, terms_accepted_at, terms_version, blocked_at, blocked_reason, created_at, updated_at
    FROM p2_new
    ORDER BY created_at, source_id
    RETURNING id, phone
)
SELECT ins.id AS user_id, n.source_id, n.phone, n.terms_version, n.terms_accepted_at
FROM ins JOIN p2_new n ON n.phone = ins.phone;
ANALYZE p2_inserted;

INSERT INTO :"source".wh_user_ids (source_id, user_id, outcome)
SELECT p.source_id, coalesce(i.user_id, u.id),
       CASE WHEN i.source_id = p.source_id THEN 'imported' WHEN i.user_id IS NOT NULL THEN 'merged' ELSE 'existing' END
FROM p2_people p
LEFT JOIN p2_inserted i ON i.phone = p.phone
LEFT JOIN whatsapp_handler.users u ON i.user_id IS NULL AND u.phone = p.phone
WHERE p.phone IS NOT NULL;

INSERT INTO :"source".wh_migration_report (source_table, source_id, outcome, detail)
SELECT 'users', m.source_id, m.outcome,
       CASE m.outcome WHEN 'merged' THEN 'the same number as source user ' || k.kept_id || ' in another spelling; kept that one'
                      ELSE 'this number is already a user here (' || m.user_id || '), left as it is' END
FROM :"source".wh_user_ids m
JOIN p2_people p ON p.source_id = m.source_id
JOIN p2_kept k ON k.phone = p.phone
WHERE m.outcome <> 'imported'
UNION ALL
SELECT 'users', source_id, 'terms_dropped', 'terms_version missing, malformed or without terms_accepted_at: the person accepts the terms again'
FROM p2_new WHERE terms_dropped;

-- Preferences: the kept row's, each value checked against the table's rules; a value that
-- breaks one is the default (listed), a missing value the default (not listed).
CREATE TEMPORARY TABLE p2_pref_values ON COMMIT DROP AS
SELECT i.user_id, i.source_id, r.*,
       pg_temp.p2_bool(r.notifications_enabled) AS v_notifications,
       CASE WHEN r.language ~ '^[a-z]{2,3}(-[A-Z]{2})?$' THEN r.language END AS v_language,
       CASE WHEN EXISTS (SELECT FROM pg_timezone_names z WHERE z.name = r.timezone) AND char_length(r.timezone) <= 64
            THEN r.timezone END AS v_timezone,
       CASE WHEN btrim(r.delay_threshold_minutes) ~ '^[0-9]{1,4}$' AND btrim(r.delay_threshold_minutes)::integer <= 1440
            THEN btrim(r.delay_threshold_minutes)::integer END AS v_delay,
       pg_temp.p2_bool(r.auto_claim) AS v_auto_claim
FROM p2_inserted i
LEFT JOIN p2_prefs r ON r.source_user_id = i.source_id;

INSERT INTO whatsapp_handler.user_preferences (user_id, notifications_enabled, language, timezone,
                                               delay_threshold_minutes, auto_claim, updated_at)
SELECT user_id, coalesce(v_notifications, true), coalesce(v_language, 'en-GB'), coalesce(v_timezone, 'UTC'),
       coalesce(v_delay, 15), coalesce(v_auto_claim, false), coalesce(updated_at, now())
FROM p2_pref_values;

INSERT INTO :"source".wh_migration_report (source_table, source_id, outcome, detail)
SELECT 'user_preferences', source_id, 'defaulted', f || ': not a valid value here, the default is used'
FROM p2_pref_values,
     LATERAL (VALUES ('notification_enabled', notifications_enabled IS NOT NULL AND v_notifications IS NULL),
                     ('language', language IS NOT NULL AND v_language IS NULL),
                     ('timezone', timezone IS NOT NULL AND v_timezone IS NULL),
                     ('delay_threshold_minutes', delay_threshold_minutes IS NOT NULL AND v_delay IS NULL),
                     ('auto_claim_enabled', auto_claim IS NOT NULL AND v_auto_claim IS NULL)) AS bad(f, is_bad)
WHERE is_bad
UNION ALL
SELECT 'user_preferences', k.source_id, 'not_carried_key', 'key ' || k.preference_key || ' has no column here'
FROM p2_pref_keys k
WHERE k.preference_key NOT IN ('notification_enabled', 'notifications_enabled', 'notifications', 'language',
                               'timezone', 'delay_threshold_minutes', 'auto_claim_enabled', 'auto_claim');

-- A conversation on the channel for each person carried: active when they had accepted the
-- terms (recorded as the channel's brand's, as a conversation's acceptance is), else new,
-- so that their next message starts the terms as a first contact's does.
INSERT INTO whatsapp_handler.conversations (user_id, channel_id, state, terms_version, terms_accepted_at)
SELECT user_id, current_setting('wh_migrate.channel')::bigint,
       CASE WHEN terms_version IS NOT NULL THEN 'active' ELSE 'new' END, terms_version, terms_accepted_at
FROM p2_inserted
ON CONFLICT ON CONSTRAINT conversations_user_channel_unique DO NOTHING;

-- 4. The old outbox. Published events are history the consumers had: not carried. The
--    unpublished events of a person carried go onto the outbox queue, in the order they were
--    written, in this service's envelope (_event_envelope) with their own event_id (a
--    consumer that saw one before de-duplicates it) and time. Others are listed.
CREATE TEMPORARY TABLE p2_events ON COMMIT DROP AS
SELECT o.*, m.user_id,
       CASE WHEN o.published_at IS NOT NULL THEN 'published'
            WHEN o.aggregate_type IS DISTINCT FROM 'user' THEN 'refused_aggregate'
            WHEN m.user_id IS NULL THEN 'refused_person'
            WHEN o.event_type !~ '^[a-z_]+(\.[a-z_]+)+$' THEN 'refused_type'
            ELSE 'queued' END AS outcome
FROM p2_outbox o
LEFT JOIN :"source".wh_user_ids m ON m.source_id = o.aggregate_id;

SELECT count(*) AS outbox_events_queued
FROM whatsapp_handler._enqueue_outbox(
    ARRAY(SELECT whatsapp_handler._event_envelope(event_type, user_id, payload, left(correlation_id, 128))
                 || jsonb_build_object(
                        'occurred_at', created_at,
                        'version', CASE WHEN event_version ~ '^[0-9]{1,4}(\.[0-9]+)*$' THEN split_part(event_version, '.', 1)::integer ELSE 1 END)
                 || CASE WHEN source_id ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
                         THEN jsonb_build_object('event_id', lower(source_id)) ELSE '{}' END
          FROM p2_events WHERE outcome = 'queued' ORDER BY created_at, source_id),
    ARRAY(SELECT 'user:' || user_id FROM p2_events WHERE outcome = 'queued' ORDER BY created_at, source_id));

INSERT INTO :"source".wh_migration_report (source_table, source_id, outcome, detail)
SELECT 'outbox_events', source_id, outcome,
       CASE outcome WHEN 'refused_aggregate' THEN 'about a ' || coalesce(aggregate_type, 'NULL') || ', not a person: this service''s events are about people and channels'
                    WHEN 'refused_person' THEN 'its person was not carried (refused, erased, or unknown)'
                    ELSE 'malformed event type' END
FROM p2_events WHERE outcome LIKE 'refused%';

-- 5. Webhook dead letters. Resolved ones (reprocessed, discarded) are not carried. The rest
--    are stored as failed webhooks with a dead letter in inbound_dlq, parked: an operator
--    replays (whatsapp-handler dlq replay inbound) or purges them; the re-drive job does not
--    run a webhook weeks late on its own.
CREATE TEMPORARY TABLE p2_letters ON COMMIT DROP AS
SELECT d.*,
       CASE WHEN lower(d.status) IN ('reprocessed', 'discarded', 'resolved', 'ignored', 'delivered') THEN 'resolved'
            WHEN d.provider IS NULL THEN 'refused_payload'
            ELSE 'dead_lettered' END AS outcome
FROM (SELECT d.*,
             CASE WHEN jsonb_typeof(d.payload) IS DISTINCT FROM 'object' THEN NULL
                  WHEN d.payload ->> 'object' = 'whatsapp_business_account' THEN 'meta'
                  WHEN d.payload ? 'event' AND d.payload ? 'instance' THEN 'evolution'
                  WHEN d.payload ? 'MessageSid' OR d.payload ? 'SmsMessageSid' OR d.payload ? 'AccountSid' THEN 'twilio'
             END AS provider
      FROM p2_dlq d) d;

CREATE TEMPORARY TABLE p2_stored ON COMMIT DROP AS
WITH ins AS (
    INSERT INTO whatsapp_handler.webhook_events (received_at, provider, channel_id, correlation_id, payload, outcome, error)
    SELECT clock_timestamp(), l.provider::whatsapp_handler.provider,
           (SELECT c.id FROM whatsapp_handler.channels c
            WHERE c.provider = l.provider::whatsapp_handler.provider
              AND c.provider_ref = CASE l.provider WHEN 'meta' THEN l.payload #>> '{entry,0,changes,0,value,metadata,phone_number_id}'
                                                   WHEN 'evolution' THEN l.payload ->> 'instance'
                                                   ELSE l.payload ->> 'To' END),
           left(l.correlation_id, 128), l.payload, 'failed',
           format('imported from %s.webhook_dlq %s (first failed %s, %s retries): %s', current_setting('wh_migrate.source'),
                  l.source_id, l.created_at, coalesce(l.retry_count, 0), left(coalesce(l.error_message, 'no error recorded'), 500))
    FROM p2_letters l WHERE l.outcome = 'dead_lettered'
    ORDER BY l.created_at, l.source_id
    RETURNING id, received_at, provider, correlation_id, error
)
SELECT ins.*, l.source_id, l.retry_count, l.error_message
FROM ins JOIN p2_letters l  -- the source id is the word after the prefix: an equality, hashed
  ON split_part(substr(ins.error, char_length(format('imported from %s.webhook_dlq ', current_setting('wh_migrate.source'))) + 1), ' ', 1)
     = l.source_id;

SELECT count(whatsapp_handler._mark_inbound_letter(
           whatsapp_handler._dead_letter_inbound(jsonb_build_object(
               'webhook_event_id', id, 'received_at', received_at, 'provider', provider, 'sqlstate', NULL,
               'error', left(coalesce(error_message, 'no error recorded'), 500), 'correlation_id', correlation_id)),
           jsonb_build_object('attempts', coalesce(retry_count, 0), 'parked', true,
                              'imported_from', current_setting('wh_migrate.source') || '.webhook_dlq ' || source_id),
           interval '0')) AS inbound_letters_parked
FROM p2_stored;

INSERT INTO :"source".wh_migration_report (source_table, source_id, outcome, detail)
SELECT 'webhook_dlq', source_id, outcome, 'its payload is not a Meta, Twilio or Evolution webhook body: nothing here could run it'
FROM p2_letters WHERE outcome = 'refused_payload';

-- 6. wa_events: the messages among them (a provider message id, a direction, a person
--    carried) become messages on the channel, with their de-duplication keys, so that a late
--    status of an old message finds it. Status-only rows fold into their message's status.
--    What is past retention.messages is not carried (the partitions job would drop it).
-- The cut-off: retention.messages before now (none when the setting keeps messages forever).
SELECT set_config('wh_migrate.cutoff',
                  coalesce((now() - whatsapp_handler._setting_interval('retention.messages'))::text, '-infinity'), true)
       AS p2_cutoff \gset

-- Each distinct spelling of a number normalised once.
CREATE TEMPORARY TABLE p2_wa_phones ON COMMIT DROP AS
SELECT phone_raw, pg_temp.p2_phone(phone_raw) AS phone FROM (SELECT DISTINCT phone_raw FROM p2_wa WHERE phone_raw IS NOT NULL) d;
ANALYZE p2_wa_phones;

CREATE TEMPORARY TABLE p2_messages ON COMMIT DROP AS
WITH rows AS (
    SELECT w.message_id, lower(w.direction) AS direction, w.created_at, w.source_id, w.payload, w.correlation_id, p.phone,
           -- A status of theirs as this service's, or NULL when it is none of these.
           CASE WHEN lower(w.status) IN ('sent', 'delivered', 'read', 'failed')
                THEN lower(w.status)::whatsapp_handler.message_status END AS status
    FROM p2_wa w LEFT JOIN p2_wa_phones p ON p.phone_raw = w.phone_raw
    WHERE w.message_id IS NOT NULL AND char_length(w.message_id) BETWEEN 1 AND 256
      AND lower(w.direction) IN ('inbound', 'outbound')
      AND w.created_at >= current_setting('wh_migrate.cutoff')::timestamptz
), firsts AS (
    SELECT DISTINCT ON (message_id) message_id, direction, created_at, payload, correlation_id
    FROM rows ORDER BY message_id, created_at, source_id
), folded AS (
    SELECT message_id, max(created_at) AS status_at, min(phone) AS phone,
           -- The furthest status reached, in the project's order (_status_rank).
           (array_agg(status ORDER BY whatsapp_handler._status_rank(status) DESC) FILTER (WHERE status IS NOT NULL))[1] AS status
    FROM rows GROUP BY message_id
)
SELECT f.message_id, f.direction, f.created_at, g.status_at, g.phone, f.payload, f.correlation_id, g.status
FROM firsts f JOIN folded g ON g.message_id = f.message_id;
ANALYZE p2_messages;

CREATE TEMPORARY TABLE p2_message_rows ON COMMIT DROP AS
SELECT m.*, u.id AS user_id, c.id AS conversation_id,
       CASE WHEN m.phone IS NULL THEN 'refused_phone'
            WHEN u.id IS NULL THEN 'unknown_person'
            WHEN EXISTS (SELECT FROM whatsapp_handler.message_keys k
                         WHERE k.channel_id = current_setting('wh_migrate.channel')::bigint AND k.provider_message_id = m.message_id)
                THEN 'already_known'
            ELSE 'imported' END AS outcome
FROM p2_messages m
LEFT JOIN whatsapp_handler.users u ON u.phone = m.phone
LEFT JOIN whatsapp_handler.conversations c ON c.user_id = u.id AND c.channel_id = current_setting('wh_migrate.channel')::bigint;

-- Monthly partitions for the months the messages fall in (none of them in DEFAULT).
SELECT count(whatsapp_handler.create_partition('whatsapp_handler.messages', m, (m AT TIME ZONE 'UTC' + interval '1 month') AT TIME ZONE 'UTC'))
           AS message_partitions
FROM (SELECT DISTINCT date_trunc('month', created_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS m
      FROM p2_message_rows WHERE outcome = 'imported') months;

WITH ins AS (
    INSERT INTO whatsapp_handler.messages (created_at, channel_id, user_id, conversation_id, direction, provider_message_id,
                                           message_type, body, status, status_at, correlation_id)
    SELECT created_at, current_setting('wh_migrate.channel')::bigint, user_id, conversation_id,
           lower(direction)::whatsapp_handler.message_direction, message_id,
           CASE WHEN payload ->> 'type' ~ '^[a-z_]{1,32}$' THEN payload ->> 'type' ELSE 'text' END,
           coalesce(payload #>> '{text,body}', payload ->> 'body'),
           CASE WHEN lower(direction) = 'inbound' THEN 'received' ELSE coalesce(status, 'sent') END::whatsapp_handler.message_status,
           status_at, left(correlation_id, 128)
    FROM p2_message_rows WHERE outcome = 'imported'
    ORDER BY created_at, message_id
    RETURNING id, created_at, channel_id, provider_message_id
)
INSERT INTO whatsapp_handler.message_keys (channel_id, provider_message_id, message_id, message_created_at)
SELECT channel_id, provider_message_id, id, created_at FROM ins;

-- 7. What the run did, by table and outcome: kept in the marker row and printed.
UPDATE :"source".wh_migration SET counts = jsonb_build_object(
    'users', (SELECT jsonb_object_agg(outcome, n) FROM (
                  SELECT outcome, count(*) AS n FROM :"source".wh_user_ids GROUP BY outcome
                  UNION ALL
                  SELECT outcome, count(*) FROM :"source".wh_migration_report
                  WHERE source_table = 'users' AND outcome IN ('refused_phone', 'not_carried_erased') GROUP BY outcome
                  UNION ALL
                  SELECT 'otp_dropped', count(*) FROM p2_users WHERE otp_present) x),
    'user_preferences', jsonb_build_object(
        'rows', (SELECT count(*) FROM p2_prefs),
        'imported', (SELECT count(*) FROM p2_pref_values WHERE source_user_id IS NOT NULL),
        'defaults_only', (SELECT count(*) FROM p2_pref_values WHERE source_user_id IS NULL),
        'not_carried', (SELECT count(*) FROM p2_prefs r WHERE NOT EXISTS (SELECT FROM p2_inserted i WHERE i.source_id = r.source_user_id))),
    'outbox_events', (SELECT coalesce(jsonb_object_agg(outcome, n), '{}') FROM (SELECT outcome, count(*) AS n FROM p2_events GROUP BY outcome) x),
    'webhook_dlq', (SELECT coalesce(jsonb_object_agg(outcome, n), '{}') FROM (SELECT outcome, count(*) AS n FROM p2_letters GROUP BY outcome) x),
    'dlq_processing_log', jsonb_build_object('not_carried', (SELECT count(*) FROM :"source".dlq_processing_log)),
    'wa_events', (SELECT coalesce(jsonb_object_agg('messages_' || outcome, n), '{}')
                  FROM (SELECT outcome, count(*) AS n FROM p2_message_rows GROUP BY outcome) x)
                 || jsonb_build_object(
        'rows', (SELECT count(*) FROM p2_wa),
        'rows_not_messages', (SELECT count(*) FROM p2_wa WHERE message_id IS NULL OR char_length(message_id) NOT BETWEEN 1 AND 256
                                                          OR direction IS NULL OR lower(direction) NOT IN ('inbound', 'outbound')),
        'rows_past_retention', (SELECT count(*) FROM p2_wa WHERE message_id IS NOT NULL AND char_length(message_id) BETWEEN 1 AND 256
                                                            AND lower(direction) IN ('inbound', 'outbound')
                                                            AND created_at < current_setting('wh_migrate.cutoff')::timestamptz)));

SELECT t.key AS source_table, o.key AS outcome, o.value AS count
FROM :"source".wh_migration m, jsonb_each(m.counts) t,
     LATERAL jsonb_each(CASE WHEN jsonb_typeof(t.value) = 'object' THEN t.value ELSE '{}' END) o
ORDER BY 1, 2;

COMMIT;
