-- Not a change: included (\ir ../kept.sql) by the revert scripts that drop what a DBA set
-- (settings rows, reply texts, job schedules, channels, analyst scopes). They hand those rows
-- to whatsapp_handler_kept.keep() before dropping them, so that a revert and a redeploy give
-- the DBA's values back: the change core/restore_kept puts them back and drops this schema.
-- The schema lies outside the plan's schemas (a revert drops those) and belongs to the
-- reverting superuser, not to the owner role (a full revert may drop that role); nobody else
-- may read it: analyst logins and channel phone numbers are kept here.
-- Forget what a revert kept with DROP SCHEMA whatsapp_handler_kept CASCADE.
DO $kept$
BEGIN
    IF to_regprocedure('whatsapp_handler_kept.keep(text, jsonb)') IS NOT NULL THEN
        RETURN;
    END IF;
    CREATE SCHEMA IF NOT EXISTS whatsapp_handler_kept;
    COMMENT ON SCHEMA whatsapp_handler_kept IS
        'What a revert of whatsapp-handler dropped that a DBA had set; the next deploy (core/restore_kept) restores it and drops this schema. DROP SCHEMA whatsapp_handler_kept CASCADE forgets it.';
    CREATE TABLE IF NOT EXISTS whatsapp_handler_kept.rows (
        kind     text NOT NULL CHECK (kind IN ('setting', 'reply_text', 'job', 'channel', 'analyst')),
        key      text NOT NULL,
        row      jsonb NOT NULL,
        saved_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (kind, key)
    );
    COMMENT ON TABLE whatsapp_handler_kept.rows IS
        'One dropped row per (kind, key), as to_jsonb() of the row; the newest revert wins.';

    CREATE FUNCTION whatsapp_handler_kept.keep(p_kind text, p_rows jsonb)
    RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $fn$
    DECLARE
        v_count integer;
    BEGIN
        IF p_rows IS NULL OR jsonb_array_length(p_rows) = 0 THEN
            RETURN;
        END IF;
        INSERT INTO whatsapp_handler_kept.rows AS k (kind, key, row)
        SELECT p_kind,
               CASE p_kind
                   WHEN 'setting' THEN r->>'key'
                   WHEN 'reply_text' THEN (r->>'key') || '/' || (r->>'language')
                   WHEN 'job' THEN r->>'name'
                   WHEN 'channel' THEN r->>'id'
                   WHEN 'analyst' THEN r->>'analyst'
               END,
               r
        FROM jsonb_array_elements(p_rows) r
        ON CONFLICT (kind, key) DO UPDATE SET row = EXCLUDED.row, saved_at = EXCLUDED.saved_at;
        GET DIAGNOSTICS v_count = ROW_COUNT;
        RAISE NOTICE 'kept % % row(s) in whatsapp_handler_kept.rows: the next deploy restores them (DROP SCHEMA whatsapp_handler_kept CASCADE forgets them)',
                     v_count, p_kind;
    END
    $fn$;
    REVOKE ALL ON FUNCTION whatsapp_handler_kept.keep(text, jsonb) FROM PUBLIC;
    COMMENT ON FUNCTION whatsapp_handler_kept.keep(text, jsonb) IS
        'Called by revert scripts: keeps a JSON array of dropped rows of one kind, keyed as core/restore_kept reads them back. Raises nothing.';
END
$kept$;
