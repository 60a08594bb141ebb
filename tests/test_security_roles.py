"""What each login role can reach, read from the catalog and held to an allow list written here,
then shown by connecting as the role: denials with SQLSTATE 42501, no way up to the owner, no
objects of its own, no pg_cron. The same for the jobs' login, for PUBLIC and for every built-in
role (pg_*) against every object the plan creates. tests/test_privileges.py shows what each role
can do; this file looks for anything more."""

from __future__ import annotations

import uuid

import psycopg
import pytest
from psycopg.types.json import Jsonb

from tests.conftest import LOGIN_PASSWORD, LOGINS
from tests.helpers import raises_sqlstate

SCHEMAS = ("whatsapp_handler", "analytics", "pgmq", "cron", "public")
OWNER = "whatsapp_handler_owner"
WH = "whatsapp_handler"
ANALYTICS_VIEWS = ("active_users", "campaigns", "channels", "dead_letter_history_daily", "dead_letters",
                   "delivery_costs_daily",
                   "delivery_latency_daily", "funnel_daily", "messages_daily", "onboarded_daily", "otp_daily",
                   "refresh_status", "users", "webhook_success_daily")  # fmt: skip

# What each group role holds beyond what PUBLIC holds: (kind, object, privilege). From docs/security.md
# and the GRANTs of deploy/: the relay, the worker and the consumer call functions only; the analyst
# reads the analytics views and calls the two helpers its row-level security policies call as the caller.
ALLOWED: dict[str, set[tuple[str, str, str]]] = {
    "relay": {
        ("schema", WH, "USAGE"),
        *(("function", f"{WH}.{f}", "EXECUTE") for f in (
            "cron_job_failures()", "cron_job_lateness()", "webhook_success_rate()",
            "ingest_batch(text,jsonb[],text[])", "ingest_evolution(jsonb,text)",
            "ingest_meta(jsonb,text)", "ingest_raw(text,bytea,text,text,text)", "ingest_twilio(jsonb,text)",
            "queue_metrics()", "readiness(text,timestamp with time zone)",
            "request_otp(text,bigint,text,text)", "verify_otp(text,text,text)",
            "dead_letter_history_metrics()",
            # The business API (sending/send, people/api, campaigns/api).
            "mark_read(bytea,bigint,text,boolean,text)", "message_view(bytea,bigint)",
            "people_block(bytea,jsonb,text)", "people_consent(bytea,jsonb,text)",
            "people_erase(bytea,jsonb,text)", "people_export(bytea,jsonb,text)", "people_preferences(bytea,jsonb,text)",
            "people_set_preferences(bytea,jsonb,text)", "people_unblock(bytea,jsonb,text)",
            "api_campaign_audience(bytea,bigint,jsonb,text)", "api_campaign_control(bytea,bigint,text,text)",
            "api_campaign_create(bytea,jsonb,text)", "api_campaign_recipients(bytea,bigint,text,integer,integer)",
            "api_campaign_results(bytea,bigint)", "api_campaign_upload(bytea,bigint,jsonb,boolean,text)",
            "send_message(bytea,jsonb,text,text)", "send_messages(bytea,bigint,jsonb,text)",
            "vacuum_metrics()")),
    },
    "worker": {
        ("schema", WH, "USAGE"),
        *(("function", f"{WH}.{f}", "EXECUTE") for f in (
            "queue_metrics()", "readiness(text,timestamp with time zone)", "worker_channels()",
            "worker_claim(integer,integer,bigint[])",
            "worker_dead_letter(bigint,text,jsonb)", "worker_release(bigint,double precision)",
            "worker_retry(bigint,double precision,jsonb)", "worker_sent(bigint,text)",
            "worker_sent_batch(bigint[],text[])", "worker_pacing()",
            "worker_failed(bigint,text,text,jsonb,double precision)", "worker_campaigns(integer)",
            "worker_campaign_metrics()", "worker_next_visible()", "worker_channel_standing()")),
    },
    "analyst": {
        ("schema", "analytics", "USAGE"),
        *(("table", f"analytics.{v}", "SELECT") for v in ANALYTICS_VIEWS),
        ("function", f"{WH}._sees_all_channels()", "EXECUTE"),
        ("function", f"{WH}._visible_channels()", "EXECUTE"),
    },
    "consumer": {
        ("schema", WH, "USAGE"),
        *(("function", f"{WH}.{f}", "EXECUTE") for f in (
            "outbox_ack(bigint[])", "outbox_nack(bigint,integer)", "outbox_read(integer,integer)")),
    },
}  # fmt: skip

# The login pg_cron runs the jobs as (docs/jobs.md): the job functions, the two helpers it owns
# (pg_cron shows a role only its own jobs' runs), the schemas they live in; nothing else.
CRON_LOGIN = "whatsapp_handler_cron"
CRON_ALLOWED = {
    ("schema", WH, "USAGE"),
    ("schema", "cron", "USAGE"),
    *(("function", f"{WH}.{f}", "EXECUTE") for f in (
        "job_partitions()", "job_retention()", "job_trim_cron_history()", "job_erase_inactive_users(integer)",
        "redrive_inbound(integer,bigint[])", "redrive_outbound(integer,bigint[])",
        "job_analytics_refresh(timestamp with time zone)", "job_analyst_guard()", "job_webhook_minutes()",
        "_cron_job_last_runs()",
        "_trim_cron_history(timestamp with time zone)", "_cron_job_runs()")),
}  # fmt: skip

# Built-in roles that hold every table's rows (or the server's files and programs) by definition:
# the superuser's powers, for backups and administration, never for a monitoring agent
# (docs/security.md). The two that show in the catalog are checked to do so below.
ALL_POWERFUL = {"pg_read_all_data", "pg_write_all_data", "pg_read_server_files", "pg_write_server_files",
                "pg_execute_server_program"}  # fmt: skip

# The privileges has_*_privilege knows, per kind of object.
HELD = """
WITH objects AS (
    SELECT 'table' AS kind, c.oid::regclass::text AS name, p AS privilege,
           has_table_privilege(%(role)s, c.oid, p) AS mine, has_table_privilege('public', c.oid, p) AS everyone
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace,
         unnest(ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE', 'REFERENCES', 'TRIGGER']) p
    WHERE n.nspname = ANY (%(schemas)s) AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
    UNION ALL
    SELECT 'sequence', c.oid::regclass::text, p,
           has_sequence_privilege(%(role)s, c.oid, p), has_sequence_privilege('public', c.oid, p)
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace, unnest(ARRAY['USAGE', 'SELECT', 'UPDATE']) p
    WHERE n.nspname = ANY (%(schemas)s) AND c.relkind = 'S'
    UNION ALL
    SELECT 'function', p.oid::regprocedure::text, 'EXECUTE',
           has_function_privilege(%(role)s, p.oid, 'EXECUTE'), has_function_privilege('public', p.oid, 'EXECUTE')
    FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
    WHERE n.nspname = ANY (%(schemas)s)
    UNION ALL
    SELECT 'schema', n.nspname::text, p,
           has_schema_privilege(%(role)s, n.oid, p), has_schema_privilege('public', n.oid, p)
    FROM pg_namespace n, unnest(ARRAY['USAGE', 'CREATE']) p
    WHERE n.nspname !~ '^pg_'
    UNION ALL
    SELECT 'database', current_database(), p, has_database_privilege(%(role)s, current_database(), p),
           has_database_privilege('public', current_database(), p)
    FROM unnest(ARRAY['CREATE', 'CONNECT', 'TEMPORARY']) p
)
SELECT kind, name, privilege, everyone FROM objects WHERE mine
"""


def held(db: psycopg.Connection, role: str) -> list[dict]:
    return db.execute(HELD, {"role": role, "schemas": list(SCHEMAS)}).fetchall()


def _name(kind: str, name: str) -> str:
    # regprocedure prints a function of the search_path without its schema; the allow list names it.
    if kind == "function" and "." not in name.split("(")[0]:
        return f"public.{name}"
    return name


@pytest.mark.parametrize("login", sorted(LOGINS))
def test_each_role_holds_exactly_its_allow_list(db, login):
    rows = held(db, LOGINS[login])
    own = {(r["kind"], _name(r["kind"], r["name"]), r["privilege"]) for r in rows if not r["everyone"]}
    assert own - ALLOWED[login] == set(), f"{login} can reach what it does not need"
    assert ALLOWED[login] - own == set(), f"{login} lacks what it needs"
    # Its login user holds the same, by membership and nothing else.
    login_rows = held(db, f"wh_test_{login}")
    assert {(r["kind"], r["name"], r["privilege"]) for r in login_rows} == {
        (r["kind"], r["name"], r["privilege"]) for r in rows
    }


def test_public_reaches_nothing_of_the_service(db):
    """What every role holds through PUBLIC: nothing in the service's schemas, no way into pgmq or cron;
    the PUBLIC grants that extensions leave are invoker functions (bounded by table rights) in schemas
    only the roles above may use, and pgcrypto's pure functions."""
    rows = held(db, "public")
    schemas = {(r["name"], r["privilege"]) for r in rows if r["kind"] == "schema"}
    assert schemas == {("public", "USAGE"), ("information_schema", "USAGE")}
    assert {(r["name"], r["privilege"]) for r in rows if r["kind"] == "database"} == {
        (db.execute("SELECT current_database() AS d").fetchone()["d"], "CONNECT"),
        (db.execute("SELECT current_database() AS d").fetchone()["d"], "TEMPORARY"),
    }
    in_service = [r for r in rows if r["kind"] != "schema" and r["name"].startswith((f"{WH}.", "analytics."))]
    assert in_service == []
    definers = db.execute(
        """SELECT p.oid::regprocedure::text AS f FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
           WHERE n.nspname IN ('pgmq', 'cron', 'public') AND p.prosecdef
             AND has_function_privilege('public', p.oid, 'EXECUTE')"""
    ).fetchall()
    assert definers == []
    public_functions = {r["name"] for r in rows if r["kind"] == "function" and r["name"].split("(")[0].count(".") == 0}
    pgcrypto = {
        r["f"]
        for r in db.execute(
            """SELECT p.oid::regprocedure::text AS f FROM pg_depend d JOIN pg_proc p ON p.oid = d.objid
               JOIN pg_extension e ON e.oid = d.refobjid WHERE e.extname = 'pgcrypto' AND d.deptype = 'e'"""
        ).fetchall()
    }
    assert public_functions - pgcrypto == set()


def test_every_service_function_is_a_definer_with_a_fixed_search_path(db):
    """A granted function that ran as its caller, or with the caller's search_path, would widen the allow list."""
    granted = db.execute(
        """SELECT p.oid::regprocedure::text AS f, p.prosecdef, p.proconfig
           FROM pg_proc p WHERE p.pronamespace = 'whatsapp_handler'::regnamespace
             AND EXISTS (SELECT FROM aclexplode(p.proacl) a WHERE a.grantee <> p.proowner)"""
    ).fetchall()
    assert granted
    for row in granted:
        assert row["prosecdef"], row["f"]
        assert "search_path=pg_catalog, whatsapp_handler, pg_temp" in (row["proconfig"] or []), row["f"]


@pytest.mark.parametrize("login", sorted(LOGINS))
def test_logins_are_plain_and_cannot_become_the_owner(db, connect_as, login):
    role = db.execute(
        "SELECT rolsuper, rolcreaterole, rolcreatedb, rolbypassrls, rolreplication FROM pg_roles WHERE rolname = %s",
        (f"wh_test_{login}",),
    ).fetchone()
    assert not any(role.values())
    for other in ("whatsapp_handler_owner", *(g for k, g in LOGINS.items() if k != login)):
        assert not db.execute("SELECT pg_has_role(%s, %s, 'MEMBER') AS m", (f"wh_test_{login}", other)).fetchone()["m"]
    conn = connect_as(login)
    for target in (OWNER, "postgres", *(g for k, g in LOGINS.items() if k != login)):
        with raises_sqlstate("42501"):
            conn.execute(f"SET ROLE {target}")
        with raises_sqlstate("42501"):
            conn.execute(f"SET SESSION AUTHORIZATION {target}")
    with raises_sqlstate("42501"):
        conn.execute(f"GRANT {OWNER} TO wh_test_{login}")
    with raises_sqlstate("42501"):
        conn.execute(f"ALTER ROLE wh_test_{login} SUPERUSER")


def _private_relations(db: psycopg.Connection, login: str) -> list[str]:
    """Every table, view and sequence of the five schemas that the role was not granted."""
    allowed = {name for kind, name, _ in ALLOWED[login] if kind == "table"}
    rows = db.execute(
        """SELECT c.oid::regclass::text AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname = ANY (%s) AND c.relkind IN ('r', 'p', 'v', 'm', 'S') ORDER BY 1""",
        (list(SCHEMAS),),
    ).fetchall()
    return [r["name"] for r in rows if r["name"] not in allowed]


@pytest.mark.parametrize("login", sorted(LOGINS))
def test_every_private_relation_is_denied_when_tried(db, connect_as, login):
    conn = connect_as(login)
    names = _private_relations(db, login)
    assert len(names) > 40
    for name in names:
        with raises_sqlstate("42501"):
            conn.execute(f"SELECT 1 FROM {name} LIMIT 1")
    for name in [n for n in names if n.startswith(f"{WH}.")][:10]:
        with raises_sqlstate("42501"):
            conn.execute(f"DELETE FROM {name}")


def _ungranted_calls(db: psycopg.Connection, login: str) -> list[str]:
    """A call of every function of the service's schemas the role was not granted, all arguments NULL."""
    allowed = {name for kind, name, _ in ALLOWED[login] if kind == "function"}
    rows = db.execute(
        """SELECT p.oid::regprocedure::text AS sig, format('%I.%I', n.nspname, p.proname) AS fn,
                  ARRAY(SELECT format_type(t, NULL) FROM unnest(p.proargtypes) t) AS args
           FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
           WHERE n.nspname IN ('whatsapp_handler', 'analytics') AND p.prokind = 'f' ORDER BY 1"""
    ).fetchall()
    return [f"SELECT {r['fn']}({', '.join(f'NULL::{t}' for t in r['args'])})" for r in rows if r["sig"] not in allowed]


@pytest.mark.parametrize("login", sorted(LOGINS))
def test_every_ungranted_function_is_denied_when_called(db, connect_as, login):
    conn = connect_as(login)
    calls = _ungranted_calls(db, login)
    assert len(calls) > 40
    for call in calls:
        with raises_sqlstate("42501"):
            conn.execute(call)


@pytest.mark.parametrize("login", sorted(LOGINS))
def test_no_role_creates_objects_anywhere(db, connect_as, login):
    conn = connect_as(login)
    for schema in (*SCHEMAS, "sqitch"):
        with raises_sqlstate("42501"):
            conn.execute(f"CREATE TABLE {schema}.intruder_{login} (id int)")
        with raises_sqlstate("42501"):
            conn.execute(f"CREATE FUNCTION {schema}.intruder_{login}() RETURNS int LANGUAGE sql AS 'SELECT 1'")
    with raises_sqlstate("42501"):
        conn.execute(f"CREATE SCHEMA intruder_{login}")
    with raises_sqlstate("42501"):
        conn.execute("CREATE EXTENSION IF NOT EXISTS hstore")


@pytest.mark.parametrize("login", sorted(LOGINS))
def test_no_role_uses_pg_cron(db, connect_as, login, pg_cron_running):
    conn = connect_as(login)
    with raises_sqlstate("42501"):
        conn.execute("SELECT cron.schedule('intruder', '* * * * *', 'DELETE FROM whatsapp_handler.users')")
    with raises_sqlstate("42501"):
        conn.execute("SELECT cron.unschedule('whatsapp_handler.retention')")
    with raises_sqlstate("42501"):
        conn.execute("SELECT jobid FROM cron.job")
    with raises_sqlstate("42501"):
        conn.execute("SELECT runid FROM cron.job_run_details")
    with raises_sqlstate("42501"):
        conn.execute("DELETE FROM cron.job_run_details")
    assert db.execute("SELECT count(*) AS n FROM cron.job WHERE jobname = 'intruder'").fetchone()["n"] == 0


def test_the_relay_reads_the_jobs_failures_only_through_its_function(db, connect_as, pg_cron_running):
    """cron_job_failures() runs as the deploying login; it answers for the project's jobs only."""
    db.execute("SELECT cron.schedule('someone_elses_job', '* * * * *', 'SELECT 1')")
    rows = connect_as("relay").execute("SELECT * FROM whatsapp_handler.cron_job_failures()").fetchall()
    jobs = db.execute("SELECT cron_job_name FROM whatsapp_handler.jobs WHERE enabled").fetchall()
    assert sorted(r["job_name"] for r in rows) == sorted(j["cron_job_name"] for j in jobs)


@pytest.fixture
def analyst_login(db, cluster, db_name, channel_id):
    """A login made an analyst by add_analyst with a one-second statement timeout; dropped afterwards."""
    login = f"wh_sec_analyst_{uuid.uuid4().hex[:8]}"
    db.execute(f"CREATE ROLE {login} LOGIN PASSWORD '{LOGIN_PASSWORD}'")
    db.execute("SELECT whatsapp_handler.add_analyst(%s, ARRAY[%s]::bigint[], p_statement_timeout => '1s')",
               (login, channel_id))  # fmt: skip
    conn = psycopg.connect(cluster.url(db_name, user=login, password=LOGIN_PASSWORD), autocommit=True)
    yield login, conn
    conn.close()
    db.execute(f"DROP ROLE {login}")
    for setting in db.execute("SELECT 1 FROM pg_db_role_setting s JOIN pg_roles r ON r.oid = s.setrole "
                              "WHERE r.rolname = %s", (login,)).fetchall():  # fmt: skip
        raise AssertionError(f"settings of {login} outlived it: {setting}")


def test_what_an_analyst_can_and_cannot_change_of_its_limits(db, analyst_login):
    """statement_timeout is a user-settable parameter: no grant stops a session from lowering or lifting
    it, nor (PostgreSQL lets a role set its own defaults) from storing that on its own login. What holds
    is what needs no trust: read-only data access (no write grant anywhere), no other role's settings,
    no group role's settings. Heavy analyst queries belong on a replica (docs/scaling.md)."""
    login, conn = analyst_login
    assert conn.execute("SHOW statement_timeout").fetchone()[0] == "1s"
    with raises_sqlstate("57014"):
        conn.execute("SELECT pg_sleep(3)")
    conn.execute("SET statement_timeout = 0")  # possible, and documented as such
    conn.execute("RESET statement_timeout")
    # default_transaction_read_only is user-settable too: it guards against mistakes, grants against writes.
    conn.execute("SET default_transaction_read_only = off")
    conn.execute(f"ALTER ROLE {login} SET statement_timeout = '2s'")  # a role's own defaults are its own
    assert db.execute(
        "SELECT setconfig FROM pg_db_role_setting s JOIN pg_roles r ON r.oid = s.setrole WHERE r.rolname = %s",
        (login,),
    ).fetchone()["setconfig"]
    for other in ("whatsapp_handler_analyst", "wh_test_relay", OWNER):
        with raises_sqlstate("42501"):
            conn.execute(f"ALTER ROLE {other} SET statement_timeout = 0")
    with raises_sqlstate("42501"):
        conn.execute(f"ALTER ROLE {login} BYPASSRLS")
    with raises_sqlstate("42501"):
        conn.execute("DELETE FROM analytics.users")


# --- the jobs' login, PUBLIC and the built-in roles ----------------------------------------------


def test_the_jobs_login_holds_exactly_its_allow_list(db):
    role = db.execute(
        "SELECT rolcanlogin, rolsuper, rolcreaterole, rolcreatedb, rolbypassrls, rolreplication, rolpassword IS NULL "
        "AS no_password FROM pg_authid WHERE rolname = %s",
        (CRON_LOGIN,),
    ).fetchone()
    assert role == {"rolcanlogin": True, "rolsuper": False, "rolcreaterole": False, "rolcreatedb": False,
                    "rolbypassrls": False, "rolreplication": False, "no_password": True}  # fmt: skip
    memberships = db.execute("SELECT count(*) AS n FROM pg_auth_members WHERE member = %s::regrole", (CRON_LOGIN,))
    assert memberships.fetchone()["n"] == 0
    own = {(r["kind"], _name(r["kind"], r["name"]), r["privilege"]) for r in held(db, CRON_LOGIN) if not r["everyone"]}
    assert own == CRON_ALLOWED
    # Every job it runs is one it may run, and no job of the project runs as anyone else.
    jobs = db.execute(
        "SELECT c.username, has_function_privilege(c.username, p.oid, 'EXECUTE') AS may FROM whatsapp_handler.jobs j "
        "JOIN cron.job c ON c.jobname = j.cron_job_name "
        "JOIN pg_proc p ON p.pronamespace = 'whatsapp_handler'::regnamespace AND p.proname = j.function"
    ).fetchall()
    assert jobs and all(j == {"username": CRON_LOGIN, "may": True} for j in jobs)


PLAN_OBJECTS = """
SELECT 'table' AS kind, c.oid::regclass::text AS name
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f')
  AND (n.nspname IN ('whatsapp_handler', 'analytics') OR c.relowner = ANY (%(roles)s))
UNION ALL
SELECT 'sequence', c.oid::regclass::text
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'S' AND (n.nspname IN ('whatsapp_handler', 'analytics') OR c.relowner = ANY (%(roles)s))
UNION ALL
SELECT 'function', p.oid::regprocedure::text
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname IN ('whatsapp_handler', 'analytics') OR p.proowner = ANY (%(roles)s)
UNION ALL
SELECT 'schema', nspname::text FROM pg_namespace WHERE nspname IN ('whatsapp_handler', 'analytics')
"""


def plan_objects(db: psycopg.Connection) -> set[tuple[str, str]]:
    """Every table, view, sequence, function and schema the plan creates: those of its two schemas, and
    those its roles own elsewhere (the queues in pgmq, the jobs' login's functions)."""
    roles = [OWNER, CRON_LOGIN]
    oids = [r["oid"] for r in db.execute("SELECT oid FROM pg_roles WHERE rolname = ANY (%s)", (roles,)).fetchall()]
    return {(r["kind"], r["name"]) for r in db.execute(PLAN_OBJECTS, {"roles": oids}).fetchall()}


def builtin_roles(db: psycopg.Connection) -> list[str]:
    return [r["rolname"] for r in db.execute("SELECT rolname FROM pg_roles WHERE rolname ~ '^pg_' ORDER BY 1")]


def test_no_builtin_role_nor_public_reaches_what_the_plan_creates(db):
    """Every pg_* role of the server and PUBLIC, against every object of the plan: nothing, the queues
    included (pgmq's install grants pg_monitor SELECT on its schema's tables by default privileges; the
    queue changes take it back). pg_read_all_data and pg_write_all_data are all-powerful by definition and
    are shown to be. Outside the plan, pg_monitor keeps pgmq's own catalog (queue names, no message)."""
    plan = plan_objects(db)
    assert ("table", "pgmq.q_outbound") in plan and ("table", "pgmq.a_outbox") in plan
    assert ("sequence", "pgmq.q_outbound_msg_id_seq") in plan and ("schema", "analytics") in plan
    assert len(plan) > 100
    roles = builtin_roles(db)
    assert {"pg_monitor", "pg_read_all_stats", "pg_signal_backend", "pg_database_owner", "pg_read_all_data"} <= set(
        roles
    )
    pgmq_catalog = {
        ("table", r["name"], "SELECT")
        for r in db.execute(
            "SELECT c.oid::regclass::text AS name FROM pg_class c WHERE c.relnamespace = 'pgmq'::regnamespace "
            "AND c.relkind = 'r' AND c.relname !~ '^[qa]_'"
        ).fetchall()
    }
    outside = {"pg_monitor": {("schema", "pgmq", "USAGE"), *pgmq_catalog},
               "pg_database_owner": {("schema", "public", "CREATE")}}  # fmt: skip
    for role in roles:
        rows = {(r["kind"], _name(r["kind"], r["name"]), r["privilege"]) for r in held(db, role) if not r["everyone"]}
        reached = {row for row in rows if row[:2] in plan}
        if role in ("pg_read_all_data", "pg_write_all_data"):
            wanted = "SELECT" if role == "pg_read_all_data" else "INSERT"
            assert ("table", "pgmq.q_outbound", wanted) in reached, role
            continue
        assert reached == set(), f"{role} reaches {sorted(reached)[:5]}"
        assert {row for row in rows if row[:2] not in plan} <= outside.get(role, set()), role
    public = {(r["kind"], _name(r["kind"], r["name"]), r["privilege"]) for r in held(db, "public")}
    assert {row for row in public if row[:2] in plan} == set()


def test_a_monitoring_login_reads_no_queued_message(db, cluster, db_name):
    """A login granted every built-in role but the all-powerful ones (pg_monitor, what monitoring agents
    hold, among them) reads no queue: not the OTP code waiting on outbound, not an archive, not a
    sequence; pgmq's functions, which run as their caller, are refused too."""
    login = f"wh_sec_monitor_{uuid.uuid4().hex[:8]}"
    grantable = [r for r in builtin_roles(db) if r not in ALL_POWERFUL and r != "pg_database_owner"]
    assert "pg_monitor" in grantable
    db.execute(f"CREATE ROLE {login} LOGIN PASSWORD '{LOGIN_PASSWORD}' IN ROLE {', '.join(grantable)}")
    otp = {"kind": "otp", "channel_id": 1, "user_id": 1, "to": "+447700900123", "code": "424242"}
    db.execute("SELECT pgmq.send('outbound', %s)", (Jsonb(otp),))
    db.execute("SELECT pgmq.send('outbound_dlq', %s)", (Jsonb({"message": otp, "reason": "rejected"}),))
    queues = [
        r["name"]
        for r in db.execute(
            "SELECT c.oid::regclass::text AS name FROM pg_class c WHERE c.relnamespace = 'pgmq'::regnamespace "
            "AND c.relname ~ '^[qa]_' AND c.relkind IN ('r', 'S') ORDER BY 1"
        ).fetchall()
    ]
    assert "pgmq.q_outbound" in queues and "pgmq.q_outbound_msg_id_seq" in queues and len(queues) == 15
    try:
        with psycopg.connect(cluster.url(db_name, user=login, password=LOGIN_PASSWORD), autocommit=True) as conn:
            assert conn.execute("SELECT pg_has_role(current_user, 'pg_monitor', 'member')").fetchone()[0]
            assert conn.execute("SELECT count(*) FROM pgmq.meta WHERE queue_name = 'outbound'").fetchone()[0] == 1
            for name in queues:
                with raises_sqlstate("42501"):
                    conn.execute(f"SELECT * FROM {name}")
            for call in ("SELECT * FROM pgmq.read('outbound', 30, 10)", "SELECT * FROM pgmq.pop('outbound')",
                         "SELECT * FROM pgmq.metrics('outbound')",
                         "SELECT * FROM pgmq.archive('outbound', 1::bigint)"):  # fmt: skip
                with raises_sqlstate("42501"):
                    conn.execute(call)
    finally:
        db.execute(f"DROP ROLE {login}")
    # The code was there all along (the superuser reads it).
    assert db.execute("SELECT count(*) AS n FROM pgmq.q_outbound WHERE message ->> 'code' = '424242'").fetchone()["n"]
