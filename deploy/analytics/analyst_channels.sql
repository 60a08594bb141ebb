-- Deploy whatsapp_handler:analytics/analyst_channels to pg
-- requires: core/channels analytics/analyst_role core/assert_function
-- Which channels each analyst login may see (docs/analytics.md). A login with no row sees
-- no channel at all: all channels only by an explicit all_channels grant. The row-level
-- security of the analytics summaries and the live views read it through
-- _visible_channels(); DBAs write it through add_analyst / remove_analyst.
BEGIN;
SET LOCAL ROLE whatsapp_handler_owner;

CREATE TABLE whatsapp_handler.analyst_channels (
    analyst      name PRIMARY KEY,
    all_channels boolean NOT NULL DEFAULT false,
    channel_ids  bigint[] NOT NULL DEFAULT '{}',
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT analyst_channels_all_or_listed CHECK (all_channels = (cardinality(channel_ids) = 0))
);
COMMENT ON TABLE whatsapp_handler.analyst_channels IS 'The channels an analyst login sees in schema analytics. No row: nothing. Written by add_analyst / remove_analyst; never readable by analysts.';
COMMENT ON COLUMN whatsapp_handler.analyst_channels.analyst IS 'The login role (pg_roles.rolname) as session_user reports it; not the group.';
COMMENT ON COLUMN whatsapp_handler.analyst_channels.all_channels IS 'true: every channel, present and future (then channel_ids is empty).';
COMMENT ON COLUMN whatsapp_handler.analyst_channels.channel_ids IS 'The channels (whatsapp_handler.channels.id) the analyst sees when all_channels is false; never empty then.';
COMMENT ON COLUMN whatsapp_handler.analyst_channels.created_at IS 'When the analyst was first added.';
COMMENT ON COLUMN whatsapp_handler.analyst_channels.updated_at IS 'When the scope last changed.';

-- Both helpers answer for session_user, the login: inside a SECURITY DEFINER function
-- current_user is the owner. They must be executable by the analysts, because a function
-- called in a view or a policy is checked against the caller, not the view's owner; being
-- about the caller's own login, they tell an analyst nothing about anyone else.
CREATE FUNCTION whatsapp_handler._visible_channels()
RETURNS bigint[]
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
    SELECT CASE
        -- whatsapp_handler_cron: pg_cron's login for the jobs, the analytics refresh among them.
        WHEN r.rolsuper OR pg_has_role(r.oid, 'whatsapp_handler_owner', 'USAGE') OR r.rolname = 'whatsapp_handler_cron'
             OR a.all_channels
            THEN (SELECT coalesce(array_agg(id ORDER BY id), '{}') FROM channels)
        ELSE coalesce(a.channel_ids, '{}')
    END
    FROM pg_roles r LEFT JOIN analyst_channels a ON a.analyst = r.rolname
    WHERE r.rolname = session_user
$$;
REVOKE ALL ON FUNCTION whatsapp_handler._visible_channels() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION whatsapp_handler._visible_channels() TO whatsapp_handler_analyst;
COMMENT ON FUNCTION whatsapp_handler._visible_channels() IS
    'Internal, for the row-level security of the analytics summaries and the live analytics views: the channel ids the session''s login (session_user) sees. Every channel for a superuser, a member of the owner, the jobs'' login whatsapp_handler_cron (the refresh job runs as it), or an analyst granted all_channels; the listed ones for a scoped analyst; none (empty array) for a login with no row. SECURITY DEFINER so that analysts need no access to analyst_channels; analysts execute it (through the views) and learn only their own scope.';

CREATE FUNCTION whatsapp_handler._sees_all_channels()
RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
    SELECT coalesce(bool_or(r.rolsuper OR pg_has_role(r.oid, 'whatsapp_handler_owner', 'USAGE')
                            OR r.rolname = 'whatsapp_handler_cron' OR a.all_channels), false)
    FROM pg_roles r LEFT JOIN analyst_channels a ON a.analyst = r.rolname
    WHERE r.rolname = session_user
$$;
REVOKE ALL ON FUNCTION whatsapp_handler._sees_all_channels() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION whatsapp_handler._sees_all_channels() TO whatsapp_handler_analyst;
COMMENT ON FUNCTION whatsapp_handler._sees_all_channels() IS
    'Internal, for the live analytics views: whether the session''s login sees every channel (superuser, member of the owner, the jobs'' login whatsapp_handler_cron, or an all_channels analyst), and so also rows tied to no known channel (dead letters whose channel is unknown).';

-- SECURITY INVOKER: granting a role and setting a login's parameters need a superuser or
-- CREATEROLE, which the owner role does not have; a DBA runs it as such a login.
CREATE FUNCTION whatsapp_handler.add_analyst(p_login name, p_channel_ids bigint[], p_all_channels boolean DEFAULT false,
                                             p_statement_timeout text DEFAULT '30s', p_idle_timeout text DEFAULT '60s')
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
DECLARE
    v_role   pg_roles;
    v_ids    bigint[] := (SELECT coalesce(array_agg(DISTINCT c ORDER BY c), '{}') FROM unnest(p_channel_ids) c);
    v_unknown bigint[];
BEGIN
    SELECT * INTO v_role FROM pg_roles WHERE rolname = p_login;
    IF NOT FOUND OR NOT v_role.rolcanlogin THEN
        RAISE EXCEPTION 'analyst login % does not exist or cannot log in', coalesce(p_login, 'NULL')
            USING ERRCODE = 'WH030',
                  HINT = 'CREATE ROLE <name> LOGIN PASSWORD ''...''; first, then SELECT whatsapp_handler.add_analyst(''<name>'', ARRAY[<channel ids>]).';
    END IF;
    IF v_role.rolsuper OR v_role.rolbypassrls OR pg_has_role(v_role.oid, 'whatsapp_handler_owner', 'USAGE') THEN
        RAISE EXCEPTION 'login % is a superuser, bypasses row-level security or is a member of whatsapp_handler_owner', p_login
            USING ERRCODE = 'WH033',
                  HINT = 'Analysts need a login of their own with none of these attributes: such a login would see every channel and could read the service''s tables.';
    END IF;
    IF coalesce(p_all_channels, false) = (cardinality(v_ids) > 0) THEN
        RAISE EXCEPTION 'give % either some channel ids or all channels, not both or neither', p_login
            USING ERRCODE = 'WH031',
                  HINT = 'add_analyst(''<login>'', ARRAY[1, 2]) for some channels, add_analyst(''<login>'', NULL, p_all_channels => true) for all of them.';
    END IF;
    SELECT array_agg(c) INTO v_unknown FROM unnest(v_ids) c WHERE NOT EXISTS (SELECT FROM channels WHERE id = c);
    IF v_unknown IS NOT NULL THEN
        RAISE EXCEPTION 'no channel %', v_unknown
            USING ERRCODE = 'WH031', HINT = 'Use ids of whatsapp_handler.channels (SELECT id, name FROM whatsapp_handler.channels).';
    END IF;

    EXECUTE format('GRANT whatsapp_handler_analyst TO %I', p_login);
    -- A role's settings are not inherited by its members: each login carries its own.
    EXECUTE format('ALTER ROLE %I SET statement_timeout = %L', p_login, p_statement_timeout);
    EXECUTE format('ALTER ROLE %I SET idle_in_transaction_session_timeout = %L', p_login, p_idle_timeout);
    EXECUTE format('ALTER ROLE %I SET default_transaction_read_only = on', p_login);
    INSERT INTO analyst_channels (analyst, all_channels, channel_ids)
    VALUES (p_login, coalesce(p_all_channels, false), v_ids)
    ON CONFLICT (analyst) DO UPDATE
        SET all_channels = EXCLUDED.all_channels, channel_ids = EXCLUDED.channel_ids, updated_at = now();
EXCEPTION
    WHEN insufficient_privilege THEN
        RAISE EXCEPTION 'not allowed to add analyst %: %', p_login, SQLERRM
            USING ERRCODE = 'WH032',
                  HINT = 'Run add_analyst as a superuser, or as a CREATEROLE login that is a member of whatsapp_handler_owner.';
    WHEN invalid_parameter_value THEN
        RAISE EXCEPTION 'timeouts for %: %', p_login, SQLERRM
            USING ERRCODE = 'WH031', HINT = 'Give timeouts PostgreSQL reads as durations, such as ''30s'' or ''5min''.';
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler.add_analyst(name, bigint[], boolean, text, text) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler.add_analyst(name, bigint[], boolean, text, text) IS
    'DBAs (a superuser, or CREATEROLE and a member of the owner): makes an existing login an analyst: grants whatsapp_handler_analyst, sets statement_timeout, idle_in_transaction_session_timeout and default_transaction_read_only on the login itself (role settings are not inherited), and records the channels it sees (or all of them with p_all_channels). Called again, it replaces the scope and the timeouts. Raises WH030 when the login is missing or cannot log in, WH031 for a scope that is both or neither, unknown channels or a malformed timeout, WH032 when the caller may not grant roles, WH033 for a superuser, BYPASSRLS or owner-member login.';

CREATE FUNCTION whatsapp_handler.remove_analyst(p_login name)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, whatsapp_handler, pg_temp
AS $$
BEGIN
    -- A group (whatsapp_handler_analyst itself, above all) is never an analyst: resetting its
    -- settings would lift the timeouts of every analyst in the cluster.
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = p_login AND NOT rolcanlogin) THEN
        RAISE EXCEPTION 'role % cannot log in: it is not an analyst login', p_login
            USING ERRCODE = 'WH030',
                  HINT = 'Pass the analyst''s login role, never a group role such as whatsapp_handler_analyst.';
    END IF;
    DELETE FROM analyst_channels WHERE analyst = p_login;
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = p_login) THEN
        EXECUTE format('REVOKE whatsapp_handler_analyst FROM %I', p_login);
        EXECUTE format('ALTER ROLE %I RESET statement_timeout', p_login);
        EXECUTE format('ALTER ROLE %I RESET idle_in_transaction_session_timeout', p_login);
        EXECUTE format('ALTER ROLE %I RESET default_transaction_read_only', p_login);
    END IF;
EXCEPTION
    WHEN insufficient_privilege THEN
        RAISE EXCEPTION 'not allowed to remove analyst %: %', p_login, SQLERRM
            USING ERRCODE = 'WH032',
                  HINT = 'Run remove_analyst as a superuser, or as a CREATEROLE login that is a member of whatsapp_handler_owner.';
END
$$;
REVOKE ALL ON FUNCTION whatsapp_handler.remove_analyst(name) FROM PUBLIC;
COMMENT ON FUNCTION whatsapp_handler.remove_analyst(name) IS
    'DBAs: undoes add_analyst: forgets the login''s channels, revokes whatsapp_handler_analyst and resets the timeouts set on it. The login itself is kept (DROP ROLE it if it should go). Raises WH030 for a role that cannot log in (a group), WH032 when the caller may not grant roles.';

COMMIT;
