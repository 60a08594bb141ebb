"""Schema analytics (issue 5, analysts): every view answers correctly on small known data
(tests/analytics_data.py, figures worked out by hand), shows no phone number or message
body, is all an analyst can read, shows a scoped analyst only its channels, and the
analysts' timeouts hold. The example queries of sql/analytics/ run as an analyst."""

from __future__ import annotations

import datetime as dt
import time
import uuid
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from app.settings import PROJECT_DIR
from tests import analytics_data
from tests.conftest import LOGIN_PASSWORD
from tests.helpers import raises_sqlstate

D = dt.date
VIEWS = ("channels", "users", "funnel_daily", "onboarded_daily", "otp_daily", "messages_daily",
         "delivery_latency_daily", "active_users", "dead_letters", "refresh_status",
         "delivery_costs_daily", "campaigns", "dead_letter_history_daily",
         "webhook_success_daily")  # fmt: skip
EXAMPLES = sorted((PROJECT_DIR / "sql" / "analytics").glob("*.sql"))


@pytest.fixture
def data(db):
    return analytics_data.load(db)


@pytest.fixture
def analyst(cluster, db_name, db):
    """analyst(channel ids, all_channels=False, **timeouts) -> a connection as a new login made
    an analyst by add_analyst; the logins are dropped at the end of the test."""
    made: list[tuple[str, psycopg.Connection]] = []

    def _make(channel_ids, all_channels=False, **timeouts) -> psycopg.Connection:
        login = f"wh_analyst_{uuid.uuid4().hex[:12]}"
        db.execute(f"CREATE ROLE {login} LOGIN PASSWORD '{LOGIN_PASSWORD}'")
        made.append((login, None))
        args = ", ".join(f"p_{k} => %({k})s" for k in timeouts)
        db.execute(
            f"SELECT whatsapp_handler.add_analyst(%(login)s, %(ids)s, %(all)s{', ' + args if args else ''})",
            {"login": login, "ids": channel_ids, "all": all_channels, **timeouts},
        )
        conn = psycopg.connect(cluster.url(db_name, user=login, password=LOGIN_PASSWORD), autocommit=True,
                               row_factory=dict_row)  # fmt: skip
        made[-1] = (login, conn)
        return conn

    yield _make
    for login, conn in made:
        if conn is not None:
            conn.close()
        db.execute(f"DROP ROLE {login}")


def rows(conn, sql: str, params=None) -> list[dict]:
    return conn.execute(sql, params).fetchall()


# --- the figures -----------------------------------------------------------------------


def test_funnel_and_onboarded(data, analyst):
    a, b = data["A"], data["B"]
    conn = analyst(None, all_channels=True)
    funnel = rows(conn, "SELECT day, channel_id, first_contacts, terms_accepted, verified, onboarded, verified_rate "
                        "FROM analytics.funnel_daily ORDER BY channel_id, day")  # fmt: skip
    assert [tuple(r.values())[:6] for r in funnel] == [
        (D(2026, 1, 5), a, 2, 2, 1, 1),  # u1 (all the way), u2 (terms only)
        (D(2026, 1, 6), a, 1, 0, 0, 0),  # u3
        (D(2026, 1, 7), a, 1, 1, 1, 1),  # u4's second channel
        (D(2026, 1, 5), b, 1, 1, 1, 1),  # u4
    ]
    assert funnel[0]["verified_rate"] == pytest.approx(0.5)
    # u4 counts once, on its first channel (B), the day it was onboarded (terms and OTP).
    assert rows(conn, "SELECT day, channel_id, onboarded FROM analytics.onboarded_daily ORDER BY day") == [
        {"day": D(2026, 1, 6), "channel_id": a, "onboarded": 1},
        {"day": D(2026, 1, 7), "channel_id": b, "onboarded": 1},
    ]


def test_otp(data, analyst):
    a, b = data["A"], data["B"]
    conn = analyst(None, all_channels=True)
    got = rows(conn, "SELECT * FROM analytics.otp_daily ORDER BY day")
    assert got == [
        {"day": D(2026, 1, 6), "channel_id": a, "requested": 4, "verified": 1, "failed_attempts": 8, "locked": 1,
         "expired": 1, "superseded": 1, "pending": 0},
        {"day": D(2026, 1, 7), "channel_id": b, "requested": 1, "verified": 1, "failed_attempts": 0, "locked": 0,
         "expired": 0, "superseded": 0, "pending": 0},
    ]  # fmt: skip


def test_otp_counts_survive_retention(db, data, analyst):
    db.execute("DELETE FROM whatsapp_handler.otp_challenges")
    db.execute("SELECT whatsapp_handler.job_analytics_refresh('2000-01-01')")
    conn = analyst(None, all_channels=True)
    assert [r["requested"] for r in rows(conn, "SELECT requested FROM analytics.otp_daily ORDER BY day")] == [4, 1]


def test_messages_daily(data, analyst):
    a, b = data["A"], data["B"]
    conn = analyst(None, all_channels=True)
    got = rows(conn, "SELECT day, channel_id, direction, message_type, messages FROM analytics.messages_daily "
                     "ORDER BY channel_id, day, direction, message_type")  # fmt: skip
    assert [tuple(r.values()) for r in got] == [
        (D(2026, 1, 5), a, "inbound", "image", 1),
        (D(2026, 1, 5), a, "inbound", "text", 2),
        (D(2026, 1, 5), a, "outbound", "text", 1),
        (D(2026, 1, 6), a, "inbound", "text", 2),
        (D(2026, 1, 6), a, "outbound", "text", 2),
        (D(2026, 1, 12), a, "inbound", "text", 1),
        (D(2026, 1, 7), b, "inbound", "text", 1),
        (D(2026, 1, 7), b, "outbound", "template", 1),
    ]


def test_delivery_latency(data, analyst):
    a, b = data["A"], data["B"]
    conn = analyst(None, all_channels=True)
    got = {(r["day"], r["channel_id"]): r for r in rows(conn, "SELECT * FROM analytics.delivery_latency_daily")}
    assert set(got) == {(D(2026, 1, 5), a), (D(2026, 1, 6), a), (D(2026, 1, 7), b)}
    # w1: sent (the first of two "sent"), delivered 10 s later, read 60 s after that.
    w1 = got[D(2026, 1, 5), a]
    assert (w1["sent"], w1["delivered"], w1["read"], w1["failed"]) == (1, 1, 1, 0)
    assert (w1["sent_to_delivered_p50"], w1["delivered_to_read_p50"], w1["sent_to_read_p50"]) == (10, 60, 70)
    # w2 delivered in 20 s and read 120 s later, w5 delivered in 40 s, w3 failed.
    day2 = got[D(2026, 1, 6), a]
    assert (day2["sent"], day2["delivered"], day2["read"], day2["failed"]) == (3, 2, 1, 1)
    assert day2["sent_to_delivered_p50"] == pytest.approx(30)
    assert day2["sent_to_delivered_p90"] == pytest.approx(38)  # 20 + 0.9 * (40 - 20)
    assert day2["sent_to_delivered_p99"] == pytest.approx(39.8)
    assert day2["delivered_to_read_p50"] == pytest.approx(120)
    w4 = got[D(2026, 1, 7), b]
    assert (w4["sent"], w4["delivered"], w4["read"], w4["sent_to_delivered_p50"], w4["delivered_to_read_p50"]) == (
        1, 1, 0, 30, None)  # fmt: skip


def test_active_users(data, analyst):
    a, b = data["A"], data["B"]
    conn = analyst(None, all_channels=True)
    q = "SELECT period, period_start, channel_id, users FROM analytics.active_users "
    got = [tuple(r.values()) for r in rows(conn, q + "ORDER BY period, channel_id, period_start")]
    assert got == [
        ("day", D(2026, 1, 5), a, 2),  # u1, u2
        ("day", D(2026, 1, 6), a, 2),  # u1, u3
        ("day", D(2026, 1, 12), a, 1),
        ("day", D(2026, 1, 7), b, 1),
        ("month", D(2026, 1, 1), a, 3),
        ("month", D(2026, 1, 1), b, 1),
        ("week", D(2026, 1, 5), a, 3),
        ("week", D(2026, 1, 12), a, 1),
        ("week", D(2026, 1, 5), b, 1),
    ]


def test_dead_letters_and_refresh_status(data, analyst):
    conn = analyst(None, all_channels=True)
    got = rows(conn, "SELECT queue, channel_id, messages, oldest_age_seconds >= 0 AS aged FROM analytics.dead_letters "
                     "ORDER BY queue")  # fmt: skip
    assert got == [
        {"queue": "inbound_dlq", "channel_id": None, "messages": 1, "aged": True},
        {"queue": "outbound_dlq", "channel_id": data["B"], "messages": 2, "aged": True},
    ]
    status = rows(conn, "SELECT covered_from, age_seconds >= 0 AS fresh FROM analytics.refresh_status")
    assert status == [{"covered_from": dt.datetime(2000, 1, 1, tzinfo=dt.UTC), "fresh": True}]


def test_users_are_pseudonymous_and_erasure_anonymises(db, data, analyst):
    conn = analyst(None, all_channels=True)
    users = rows(conn, "SELECT * FROM analytics.users ORDER BY channel_id, first_contact_on")
    assert len(users) == 5
    keys = {r["user_key"] for r in users}
    assert len(keys) == 4  # u4 has the same key on both channels
    assert all(isinstance(k, uuid.UUID) for k in keys)
    assert sorted(r["country_code"] for r in users) == ["+1", "+351", "+44", "+44", "+44"]
    # The key is keyed: the HMAC under the secret, not a plain hash of the id.
    keyed, plain = (
        db.execute(
            "SELECT encode(substr(hmac(convert_to(%(id)s, 'UTF8'), key, 'sha256'), 1, 16), 'hex')::uuid AS keyed,"
            " encode(substr(sha256(convert_to(%(id)s, 'UTF8')), 1, 16), 'hex')::uuid AS plain"
            " FROM whatsapp_handler.analytics_keys",
            {"id": str(data["u1"])},
        )
        .fetchone()
        .values()
    )
    assert keyed in keys and plain not in keys

    db.execute("SELECT whatsapp_handler.erase_user(%s)", (data["u3"],))
    db.execute("SELECT whatsapp_handler.job_analytics_refresh('2000-01-01')")
    u3 = rows(conn, "SELECT * FROM analytics.users WHERE erased")
    assert len(u3) == 1 and u3[0]["user_key"] is None and u3[0]["country_code"] is None
    # Still counted: the funnel and the message counts do not change.
    assert rows(conn, "SELECT first_contacts FROM analytics.funnel_daily WHERE day = '2026-01-06'") == [
        {"first_contacts": 1}
    ]
    assert rows(conn, "SELECT sum(messages)::int AS n FROM analytics.messages_daily") == [{"n": 11}]


def test_refresh_is_incremental_and_idempotent(db, data, analyst):
    conn = analyst(None, all_channels=True)
    before = rows(conn, "SELECT * FROM analytics.messages_daily ORDER BY 1, 2, 3, 4")
    db.execute("SELECT whatsapp_handler.job_analytics_refresh('2000-01-01')")
    assert rows(conn, "SELECT * FROM analytics.messages_daily ORDER BY 1, 2, 3, 4") == before
    # A default run recounts only the last days: an old day gains nothing from it...
    db.execute(
        "INSERT INTO whatsapp_handler.messages (created_at, channel_id, user_id, direction, provider_message_id, "
        "message_type, status) VALUES ('2026-01-05 12:00Z', %s, %s, 'inbound', 'late', 'text', 'received')",
        (data["A"], data["u1"]),
    )
    db.execute("SELECT whatsapp_handler.job_analytics_refresh()")
    q = (
        "SELECT messages FROM analytics.messages_daily "
        "WHERE day = '2026-01-05' AND direction = 'inbound' AND message_type = 'text'"
    )
    assert rows(conn, q) == [{"messages": 2}]
    # ...until a refresh covers it.
    db.execute("SELECT whatsapp_handler.job_analytics_refresh('2026-01-05')")
    assert rows(conn, q) == [{"messages": 3}]


def test_the_refresh_job_is_scheduled(db):
    job = db.execute(
        "SELECT function, schedule, enabled FROM whatsapp_handler.jobs WHERE name = 'analytics_refresh'"
    ).fetchone()
    assert job == {"function": "job_analytics_refresh", "schedule": "*/10 * * * *", "enabled": True}


# --- privacy ---------------------------------------------------------------------------


def test_no_phone_or_body_in_any_view(db, data, analyst, channel_id):
    from psycopg.types.json import Jsonb

    from kit import payloads as p

    # A real webhook too: a user created by ingestion, with a name and a body.
    wa_id, text = "447700900999", "BODYMARK from a webhook"
    db.execute("SELECT whatsapp_handler.ingest_meta(%s, 'cid')", (Jsonb(p.meta_body(p.meta_value(
        messages=[p.meta_text(wa_id, "wamid.PRIV1", body=text)]))),))  # fmt: skip
    db.execute("SELECT whatsapp_handler.job_analytics_refresh()")
    secrets = [*analytics_data.PHONES.values(), "+" + wa_id, text]
    secrets += [s.lstrip("+") for s in secrets if s.startswith("+")] + ["BODYMARK", "Name of"]
    conn = analyst(None, all_channels=True)
    seen = 0
    for view in VIEWS:
        for row in rows(conn, f"SELECT * FROM analytics.{view}"):
            seen += 1
            flat = " ".join(str(v) for v in row.values())
            for secret in secrets:
                assert secret not in flat, f"analytics.{view} shows {secret!r}: {row}"
    assert seen > 30  # the scan saw the data
    # And the view definitions name no such column.
    cols = db.execute("SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'analytics' "
                      "AND column_name ~ '(phone|body|name$|user_id)' AND column_name <> 'name'"
                      ).fetchall()  # fmt: skip
    assert cols == []


def test_every_view_and_column_is_documented(db):
    missing = db.execute(
        """SELECT c.relname, a.attname FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0
           WHERE c.relnamespace = 'analytics'::regnamespace
             AND (obj_description(c.oid, 'pg_class') IS NULL OR col_description(c.oid, a.attnum) IS NULL)"""
    ).fetchall()
    assert missing == []
    kinds = db.execute(
        "SELECT DISTINCT relkind FROM pg_class WHERE relnamespace = 'analytics'::regnamespace"
    ).fetchall()
    assert kinds == [{"relkind": "v"}]
    assert {r["relname"] for r in db.execute(
        "SELECT relname FROM pg_class WHERE relnamespace = 'analytics'::regnamespace"
    ).fetchall()} == set(VIEWS)  # fmt: skip


# --- what an analyst can read -----------------------------------------------------------


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM whatsapp_handler.users",
        "SELECT * FROM whatsapp_handler.messages",
        "SELECT * FROM whatsapp_handler.analytics_users",
        "SELECT * FROM whatsapp_handler.analytics_keys",
        "SELECT * FROM whatsapp_handler.analyst_channels",
        "SELECT whatsapp_handler._visible_channels(current_user)",
        "SELECT whatsapp_handler._user_key(1)",
        "SELECT whatsapp_handler.job_analytics_refresh()",
        "SELECT * FROM pgmq.q_outbound_dlq",
        "SELECT * FROM pgmq.metrics('outbound')",
        "CREATE TABLE analytics.mine (x int)",
        "CREATE VIEW analytics.mine AS SELECT 1 AS x",
    ],
)
def test_the_analyst_reads_analytics_only(data, connect_as, sql):
    conn = connect_as("analyst")
    with raises_sqlstate("42501"):
        conn.execute(sql)


def test_the_analyst_group_can_read_no_other_schema(db):
    # Nothing of the service's schemas is granted to the group, directly or through PUBLIC.
    granted = db.execute(
        """SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname IN ('whatsapp_handler', 'pgmq', 'cron')
             AND has_table_privilege('whatsapp_handler_analyst', c.oid, 'SELECT')
             AND has_schema_privilege('whatsapp_handler_analyst', n.oid, 'USAGE')"""
    ).fetchall()
    assert granted == []


def test_an_analyst_without_a_grant_sees_nothing(data, connect_as):
    # wh_test_analyst is a member of the group with no analyst_channels row: the safe default.
    conn = connect_as("analyst")
    for view in VIEWS:
        if view != "refresh_status":
            assert rows(conn, f"SELECT * FROM analytics.{view}") == [], view


def test_scoped_analysts_see_only_their_channels(data, analyst):
    a, b = data["A"], data["B"]
    only_a, only_b, both = analyst([a]), analyst([b]), analyst([a, b])
    for view in VIEWS:
        if view == "refresh_status":
            continue
        seen_a = {r["channel_id"] for r in rows(only_a, f"SELECT channel_id FROM analytics.{view}")}
        seen_b = {r["channel_id"] for r in rows(only_b, f"SELECT channel_id FROM analytics.{view}")}
        seen_both = {r["channel_id"] for r in rows(both, f"SELECT channel_id FROM analytics.{view}")}
        assert seen_a <= {a} and seen_b <= {b}, view
        assert seen_both <= {a, b} and None not in seen_both, view
    # Each sees its rows, not none: channel A has messages, B has dead letters.
    assert rows(only_a, "SELECT sum(messages)::int AS n FROM analytics.messages_daily") == [{"n": 9}]
    assert rows(only_b, "SELECT sum(messages)::int AS n FROM analytics.messages_daily") == [{"n": 2}]
    assert rows(only_a, "SELECT * FROM analytics.dead_letters") == []
    assert [r["messages"] for r in rows(only_b, "SELECT messages FROM analytics.dead_letters")] == [2]
    # A user active on both channels shows to A only with A's row.
    assert rows(only_a, "SELECT count(*)::int AS n FROM analytics.users") == [{"n": 4}]


def test_a_leaky_predicate_cannot_see_other_channels(data, analyst, db):
    """security_barrier views and RLS: a function of the analyst's, given a channel's rows,
    is applied after the channel filter."""
    conn = analyst([data["A"]])
    # The analyst cannot create functions in analytics; a temporary one is its own (the
    # login's read-only default is a safety net, not a barrier: a session may lift it).
    conn.execute("SET default_transaction_read_only = off")
    conn.execute(
        "CREATE FUNCTION pg_temp.peek(bigint) RETURNS boolean LANGUAGE plpgsql COST 0.0000001 AS "
        "$$ BEGIN RAISE NOTICE 'saw channel %', $1; RETURN true; END $$"
    )
    notices: list[str] = []
    conn.add_notice_handler(lambda d: notices.append(d.message_primary))
    conn.execute("SELECT * FROM analytics.messages_daily WHERE pg_temp.peek(channel_id)").fetchall()
    conn.execute("DROP FUNCTION pg_temp.peek(bigint)")
    assert notices and all(n == f"saw channel {data['A']}" for n in notices)


def test_add_analyst_rules(db, data, analyst):
    login = f"wh_analyst_{uuid.uuid4().hex[:12]}"
    with raises_sqlstate("WH030"):
        db.execute("SELECT whatsapp_handler.add_analyst(%s, ARRAY[1])", (login,))
    db.execute(f"CREATE ROLE {login} LOGIN")
    try:
        with raises_sqlstate("WH031"):
            db.execute("SELECT whatsapp_handler.add_analyst(%s, NULL)", (login,))
        with raises_sqlstate("WH031"):
            db.execute("SELECT whatsapp_handler.add_analyst(%s, ARRAY[1], true)", (login,))
        with raises_sqlstate("WH031"):
            db.execute("SELECT whatsapp_handler.add_analyst(%s, ARRAY[424242])", (login,))
        with raises_sqlstate("WH031"):
            db.execute("SELECT whatsapp_handler.add_analyst(%s, ARRAY[1], p_statement_timeout => 'soon')", (login,))
        with raises_sqlstate("WH033"):
            db.execute("SELECT whatsapp_handler.add_analyst('postgres', ARRAY[1])")
        db.execute("SELECT whatsapp_handler.add_analyst(%s, ARRAY[%s])", (login, data["A"]))
        settings = db.execute(
            "SELECT setconfig FROM pg_db_role_setting WHERE setrole = %s::regrole AND setdatabase = 0", (login,)
        ).fetchone()["setconfig"]
        assert sorted(settings) == ["default_transaction_read_only=on", "idle_in_transaction_session_timeout=60s",
                                    "statement_timeout=30s"]  # fmt: skip
        assert db.execute("SELECT pg_has_role(%s, 'whatsapp_handler_analyst', 'MEMBER') AS m", (login,)).fetchone()["m"]
        # The relay may not make analysts; neither may an analyst.
        with raises_sqlstate("42501"):
            analyst([data["A"]]).execute("SELECT whatsapp_handler.add_analyst(%s, ARRAY[1], true)", (login,))
        db.execute("SELECT whatsapp_handler.remove_analyst(%s)", (login,))
        assert not db.execute("SELECT pg_has_role(%s, 'whatsapp_handler_analyst', 'MEMBER') AS m", (login,)).fetchone()[
            "m"
        ]
        assert db.execute("SELECT count(*)::int AS n FROM pg_db_role_setting WHERE setrole = %s::regrole",
                          (login,)).fetchone()["n"] == 0  # fmt: skip
        # A group is no analyst: removing it would lift every analyst's timeouts.
        with raises_sqlstate("WH030"):
            db.execute("SELECT whatsapp_handler.remove_analyst('whatsapp_handler_analyst')")
        group = "SELECT setconfig FROM pg_db_role_setting WHERE setrole = 'whatsapp_handler_analyst'::regrole"
        assert "statement_timeout=30s" in db.execute(group).fetchone()["setconfig"]
    finally:
        db.execute(f"DROP ROLE {login}")


def test_a_non_superuser_without_createrole_cannot_add_analysts(db, data, cluster, db_name):
    """add_analyst is SECURITY INVOKER: a member of the owner cannot grant roles with it."""
    login = f"wh_owner_{uuid.uuid4().hex[:12]}"
    db.execute(f"CREATE ROLE {login} LOGIN PASSWORD '{LOGIN_PASSWORD}' IN ROLE whatsapp_handler_owner")
    try:
        url = cluster.url(db_name, user=login, password=LOGIN_PASSWORD)
        with psycopg.connect(url, autocommit=True) as conn, raises_sqlstate("WH032"):
            conn.execute("SELECT whatsapp_handler.add_analyst('wh_test_relay', ARRAY[1])")
    finally:
        db.execute(f"DROP ROLE {login}")


# --- timeouts --------------------------------------------------------------------------


def test_group_role_carries_the_timeouts(db):
    config = db.execute(
        "SELECT setconfig FROM pg_db_role_setting "
        "WHERE setrole = 'whatsapp_handler_analyst'::regrole AND setdatabase = 0"
    ).fetchone()["setconfig"]
    assert {"statement_timeout=30s", "idle_in_transaction_session_timeout=60s"} <= set(config)


def test_a_long_query_is_cancelled(data, analyst):
    conn = analyst([data["A"]], statement_timeout="300ms", idle_timeout="60s")
    assert conn.execute("SHOW statement_timeout").fetchone()["statement_timeout"] == "300ms"
    with raises_sqlstate("57014"):
        conn.execute("SELECT pg_sleep(30)")
    # The session survives a cancelled statement, read-only.
    assert conn.execute("SELECT count(*)::int AS n FROM analytics.channels").fetchone() == {"n": 1}
    with raises_sqlstate("25006"):
        conn.execute("CREATE TEMP TABLE t (x int)")


def test_an_idle_transaction_is_terminated(data, analyst, db):
    conn = analyst([data["A"]], statement_timeout="30s", idle_timeout="500ms")
    pid = conn.execute("SELECT pg_backend_pid() AS pid").fetchone()["pid"]
    conn.autocommit = False
    conn.execute("SELECT count(*) FROM analytics.messages_daily")
    # Wait (at most 20 s) until the server has ended the session.
    for _ in range(200):
        if not db.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone():
            break
        time.sleep(0.1)
    assert not db.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone()
    with raises_sqlstate("25P03"):
        conn.execute("SELECT 1")


def test_an_analyst_who_lifts_its_own_timeouts_is_ended_by_the_guard(data, analyst, db, connect_as):
    # PostgreSQL lets a session change its own timeouts; the guard job is what it cannot lift.
    conn = analyst([data["A"]], statement_timeout="300ms", idle_timeout="500ms")
    conn.execute("SET statement_timeout = 0")
    conn.execute("SET idle_in_transaction_session_timeout = 0")
    conn.execute("SELECT pg_sleep(0.6)")  # past its own limit: nothing stops it
    pid = conn.execute("SELECT pg_backend_pid() AS pid").fetchone()["pid"]
    conn.autocommit = False
    conn.execute("SELECT count(*) FROM analytics.messages_daily")
    # Another role's long transaction is none of the guard's business.
    other = connect_as("consumer")
    other.autocommit = False
    other.execute("SELECT 1")
    other_pid = other.execute("SELECT pg_backend_pid() AS pid").fetchone()["pid"]
    db.execute("UPDATE whatsapp_handler.settings SET value = '\"1 second\"' WHERE key = 'analyst.max_transaction'")
    time.sleep(1.5)
    report = db.execute("SELECT whatsapp_handler.job_analyst_guard() AS r").fetchone()["r"]
    assert report["limit"] == "00:00:01"
    assert [(s["pid"], s["ended"]) for s in report["sessions"]] == [(pid, True)]
    for _ in range(200):
        if not db.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone():
            break
        time.sleep(0.1)
    assert not db.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone()
    with pytest.raises(psycopg.OperationalError):
        conn.execute("SELECT 1")
    assert db.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", (other_pid,)).fetchone()
    other.rollback()


def test_the_guard_refuses_a_limit_that_is_not_an_interval(db):
    db.execute("UPDATE whatsapp_handler.settings SET value = '\"soon\"' WHERE key = 'analyst.max_transaction'")
    with raises_sqlstate("WH020"):
        db.execute("SELECT whatsapp_handler.job_analyst_guard()")


# --- the example queries ----------------------------------------------------------------


def run_example(conn, path: Path) -> list[dict]:
    return conn.execute(path.read_text()).fetchall()


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_queries_run_as_an_analyst(data, analyst, path):
    conn = analyst(None, all_channels=True)
    assert run_example(conn, path), f"{path.name} returned nothing"


def test_example_answers(data, analyst):
    conn = analyst(None, all_channels=True)
    ex = {p.stem: p for p in EXAMPLES}
    assert run_example(conn, ex["users_by_country"]) == [
        {"country_code": "+44", "users": 2, "onboarded": 2},
        {"country_code": "+1", "users": 1, "onboarded": 0},
        {"country_code": "+351", "users": 1, "onboarded": 0},
    ]
    funnel = run_example(conn, ex["funnel_by_week"])
    assert [(r["week"], r["first_contacts"], r["onboarded"]) for r in funnel] == [(D(2026, 1, 5), 5, 3)]
    otp = run_example(conn, ex["otp_outcomes_by_day"])
    assert [(r["day"], r["requested"], r["failed_attempts_per_code"]) for r in otp] == [
        (D(2026, 1, 6), 4, 2), (D(2026, 1, 7), 1, 0)]  # fmt: skip
    assert run_example(conn, ex["dead_letter_backlog"])[1]["messages"] == 2
    mau = run_example(conn, ex["active_users_by_month"])
    assert [(r["channel"], r["mau"], r["avg_dau"]) for r in mau] == [("Sales", 1, 1), ("Support", 3, Decimal("1.67"))]
    assert len(EXAMPLES) >= 8


# --- analysts never stall the jobs or ingestion ---------------------------------------


def test_an_analyst_holding_every_view_open_blocks_neither_partitions_nor_ingestion(db, data, analyst):
    """An analyst's transaction left open on every view holds no lock on a partitioned table: the
    partitions job drops and makes partitions at once (it would otherwise wait lock_timeout and list
    them as blocked), and an ingest_meta call behind it waits for no lock (lock_timeout 200 ms)."""
    from kit.payloads import meta_text

    conn = analyst(None, all_channels=True)
    day = "(date_trunc('day', now() AT TIME ZONE 'UTC' - interval '40 days') AT TIME ZONE 'UTC')"
    gone = db.execute(
        f"SELECT whatsapp_handler.create_partition('whatsapp_handler.webhook_events', {day}, {day} + interval '1 day')"
        " AS p"
    ).fetchone()["p"]
    db.execute("UPDATE whatsapp_handler.settings SET value = '9' WHERE key = 'partitions.webhook_events.ahead'")
    with conn.transaction():
        pid = conn.execute("SELECT pg_backend_pid() AS pid").fetchone()["pid"]
        for view in VIEWS:
            conn.execute(f"SELECT * FROM analytics.{view}").fetchall()
        held = db.execute(
            "SELECT c.oid::regclass::text AS rel FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
            "WHERE l.pid = %s AND (c.relkind = 'p' OR c.relispartition)",
            (pid,),
        ).fetchall()
        assert held == []
        report = db.execute("SELECT whatsapp_handler.job_partitions() AS r").fetchone()["r"]["webhook_events"]
        assert report["blocked"] == [] and report["dropped"] == [gone.removeprefix("whatsapp_handler.")]
        assert len(report["created"]) == 2
        with db.transaction():
            db.execute("SET LOCAL lock_timeout = '200ms'")
            result = db.execute(
                "SELECT whatsapp_handler.ingest_meta(%s) AS r", (Jsonb(meta_text("447700900555", "wamid.analyst")),)
            ).fetchone()["r"]
        assert result["webhook_event_id"] > 0
        # Still inside the analyst's transaction: it was never in the way.
        assert conn.execute("SELECT count(*) AS n FROM analytics.dead_letters").fetchone()["n"] >= 1


def test_an_inbound_dead_letter_carries_its_channel(db, data, analyst):
    """analytics.dead_letters no longer looks the channel up in webhook_events: the dead letter is
    given it as it is queued, and a scoped analyst sees the dead letters of its channels only."""
    event = db.execute(
        "INSERT INTO whatsapp_handler.webhook_events (provider, channel_id, payload, outcome, error) "
        "VALUES ('meta', %s, '{}', 'failed', 'WH012: not a Meta body') RETURNING id, received_at",
        (data["A"],),
    ).fetchone()
    db.execute(
        "SELECT pgmq.send('inbound_dlq', jsonb_build_object('webhook_event_id', %s::bigint, 'received_at', %s))",
        (event["id"], event["received_at"]),
    )
    message = db.execute("SELECT message FROM pgmq.q_inbound_dlq ORDER BY msg_id DESC LIMIT 1").fetchone()["message"]
    assert message["channel_id"] == data["A"]
    only_a, only_b = analyst([data["A"]]), analyst([data["B"]])
    assert rows(only_a, "SELECT queue, channel_id, messages FROM analytics.dead_letters") == [
        {"queue": "inbound_dlq", "channel_id": data["A"], "messages": 1}
    ]
    assert {r["queue"] for r in rows(only_b, "SELECT queue FROM analytics.dead_letters")} == {"outbound_dlq"}
