"""The sqitch plan, driven by the real sqitch: deploy, verify, revert all, deploy again;
verify scripts that fail when their object is wrong; clear errors on a server that
lacks a prerequisite."""

from __future__ import annotations

import os
import subprocess

import psycopg
import pytest

from app import sqitch
from app.pgmq_install import ensure_pgmq
from app.settings import PROJECT_DIR
from tests.conftest import CRON_DB

PROJECT_ROLES = (
    "whatsapp_handler_owner",
    "whatsapp_handler_relay",
    "whatsapp_handler_worker",
    "whatsapp_handler_analyst",
    "whatsapp_handler_consumer",
    "whatsapp_handler_cron",
)


PLAN = PROJECT_DIR / "sqitch.plan"


def project_leftovers(conninfo: str) -> list[str]:
    """Anything of the project still in the database: schema, queues, objects owned
    by or privileges granted to its roles, default privileges."""
    with psycopg.connect(conninfo) as conn:
        found = conn.execute(
            """
            SELECT 'schema ' || nspname FROM pg_namespace WHERE nspname IN ('whatsapp_handler', 'analytics')
            UNION ALL
            SELECT 'queue table ' || relname FROM pg_class
            WHERE relnamespace = to_regnamespace('pgmq') AND relname ~ '^[qa]_(outbox|outbound)'
            UNION ALL
            SELECT 'dependency of ' || r.rolname || ' on ' || d.classid::regclass
            FROM pg_shdepend d JOIN pg_roles r ON r.oid = d.refobjid
            WHERE d.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
              AND r.rolname = ANY (%s)
            """,
            (list(PROJECT_ROLES),),
        ).fetchall()
    return [row[0] for row in found]


def test_the_plan_reader_skips_tags_and_keeps_reworked_changes_in_order(tmp_path):
    # After a release tag, a reworked change stands in the plan twice, the second time
    # requiring its tagged self; the build expects the plan's last line.
    plan = tmp_path / "sqitch.plan"
    plan.write_text(
        "%syntax-version=1.0.0\n"
        "%project=whatsapp_handler\n"
        "\n"
        "core/roles 2026-11-01T10:00:00Z Founding engineers <e@x.invalid> # the roles\n"
        "otp/request_otp [core/roles] 2026-11-01T10:01:00Z Founding engineers <e@x.invalid> # request_otp()\n"
        "@v1.0.0 2026-11-02T10:00:00Z Founding engineers <e@x.invalid> # the first release\n"
        "  # a comment, indented\n"
        "users/erase_user [core/roles] 2026-11-03T10:00:00Z Founding engineers <e@x.invalid> # erase_user()\n"
        "otp/request_otp [otp/request_otp@v1.0.0] 2026-11-04T10:00:00Z Founding engineers <e@x.invalid> # reworked\n"
        "@v1.1.0 2026-11-05T10:00:00Z Founding engineers <e@x.invalid> # the second release\n"
    )
    names = [c.name for c in sqitch.plan_changes(plan)]
    assert names == ["core/roles", "otp/request_otp", "users/erase_user", "otp/request_otp"]
    # The two versions of the reworked change differ by the time each was planned.
    assert sqitch.last_change(plan) == sqitch.Change("otp/request_otp", "2026-11-04T10:00:00Z")
    assert sqitch.plan_changes(plan)[1] == ("otp/request_otp", "2026-11-01T10:01:00Z")


def test_every_change_has_three_scripts():
    for change in sqitch.plan_changes(PLAN):
        change = change.name
        for kind in ("deploy", "revert", "verify"):
            script = PROJECT_DIR / kind / f"{change}.sql"
            assert script.is_file() and script.read_text().strip(), f"{kind}/{change}.sql missing or empty"
            assert script.read_text().startswith(f"-- {kind.capitalize()} whatsapp_handler:{change}")


def test_what_a_revert_keeps_is_restored_by_a_later_change():
    """core/restore_kept puts back what reverts kept (docs/database.md): a change after it whose
    revert keeps rows would be restored before its own deploy made the table or the row, so
    such a change must come with a rework of core/restore_kept that moves it after."""
    changes = [c.name for c in sqitch.plan_changes(PLAN)]
    last_restore = max(i for i, name in enumerate(changes) if name == "core/restore_kept")
    later = [name for name in changes[last_restore + 1 :]
             if "whatsapp_handler_kept.keep(" in (PROJECT_DIR / "revert" / f"{name}.sql").read_text()]  # fmt: skip
    assert later == [], f"rework core/restore_kept after {later} (sqitch rework core/restore_kept)"


def test_round_trip_leaves_nothing_behind(cluster):
    # pg_cron can only be created in its own database, so the full cycle runs there.
    url = cluster.url(CRON_DB)
    sqitch.run("verify", url, capture=True)

    sqitch.run("revert", url, capture=True)
    assert project_leftovers(url) == []
    with psycopg.connect(url) as conn:
        remaining = conn.execute("SELECT extname FROM pg_extension WHERE extname IN ('pg_cron', 'pgcrypto')").fetchall()
    assert remaining == []

    sqitch.run("deploy", url, capture=True)
    sqitch.run("verify", url, capture=True)
    status = sqitch.run("status", url, capture=True).stdout
    assert "Nothing to deploy (up-to-date)" in status


def test_reverting_one_database_keeps_the_cluster_wide_settings_others_use(db_url, db):
    # Roles and their settings are the cluster's: a clone reverted to nothing must leave them
    # to the template and the other databases (the analysts' timeouts were once reset here).
    sqitch.run("revert", db_url, "-y", "--to", "core/roles", capture=True)
    config = db.execute(
        "SELECT setconfig FROM pg_db_role_setting"
        " WHERE setrole = 'whatsapp_handler_analyst'::regrole AND setdatabase = 0"
    ).fetchone()
    assert config is not None and "statement_timeout=30s" in config["setconfig"]
    member = "SELECT pg_has_role('whatsapp_handler_owner', 'pg_signal_backend', 'member') AS m"
    assert db.execute(member).fetchone()["m"]


@pytest.mark.parametrize(
    ("breakage", "change"),
    [
        ("DROP FUNCTION whatsapp_handler.verify_otp(text, text, text)", "otp/verify_otp@HEAD"),
        ("GRANT EXECUTE ON FUNCTION whatsapp_handler.erase_user(bigint) TO PUBLIC", "users/erase_user@HEAD"),
        ("ALTER TABLE whatsapp_handler.users DROP CONSTRAINT users_phone_e164", "users/users"),
        ("GRANT INSERT ON pgmq.q_outbound TO whatsapp_handler_worker", "queue/outbound@HEAD"),
        # A reworked change has two versions; @HEAD names the one deployed last.
        ("GRANT SELECT ON pgmq.a_outbox TO pg_monitor", "queue/outbox@HEAD"),
        ("UPDATE cron.job SET username = 'postgres' WHERE jobname = 'whatsapp_handler.retention'", "jobs/jobs"),
        ("ALTER FUNCTION whatsapp_handler.request_otp(text, bigint, text, text) SECURITY INVOKER", "otp/request_otp"),
        ("ALTER FUNCTION whatsapp_handler.register_user(text, bigint, text) RESET search_path", "users/register_user"),
        # The onboarding renames (issue 13): the new names, and the released verifies that take either.
        ("ALTER TABLE whatsapp_handler.users RENAME COLUMN onboarded_at TO registered_at", "users/onboarded"),
        (
            "ALTER POLICY analytics_onboarded_daily_channels ON whatsapp_handler.analytics_onboarded_daily RENAME TO p",
            "analytics/onboarded",
        ),
        ("ALTER VIEW analytics.onboarded_daily RENAME TO signups_daily", "analytics/views/registrations_daily"),
    ],
)
def test_verify_fails_when_an_object_is_wrong(db, db_url, breakage, change):
    # The change's own verify, before and after: a whole-plan verify runs it too (and
    # test_a_fresh_database_verifies shows the whole plan passing), at eighty times the cost.
    assert _sqitch("verify", "--from", change, "--to", change, url=db_url).returncode == 0
    db.execute(breakage)
    result = _sqitch("verify", "--from", change, "--to", change, url=db_url)
    assert result.returncode != 0, result.stdout
    assert "not ok" in result.stdout


def test_a_fresh_database_verifies(db_url):
    sqitch.run("verify", db_url, capture=True)


def test_plain_sqitch_explains_pg_cron_in_another_database(cluster, db):
    db.execute("CREATE DATABASE wh_not_cron")
    result = _sqitch("deploy", "--to", "queue/pgmq", url=cluster.url("wh_not_cron"))
    assert result.returncode != 0
    # pg_cron comes first in the plan and this is not pg_cron's database: its hint shows.
    assert "cron.database_name" in result.stderr


def test_the_pgmq_change_explains_a_missing_pgmq(cluster, db):
    """The server here has no pgmq extension: without the SQL-only install the change
    stops with WH092 and says how to install it."""
    db.execute("CREATE DATABASE wh_no_pgmq")
    result = subprocess.run(
        ["psql", "-X", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", str(cluster.port), "-U", "postgres",
         "-d", "wh_no_pgmq", "-f", str(PROJECT_DIR / "deploy" / "queue/pgmq.sql")],
        env={**os.environ, "PGPASSWORD": cluster.password(), "PGOPTIONS": "-c client_min_messages=error"},
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode != 0
    assert "pgmq is neither an available extension nor installed" in result.stderr
    assert "SQL-only install" in result.stderr


def _sqitch(*args: str, url: str) -> subprocess.CompletedProcess[str]:
    """Plain sqitch, as a DBA runs it, against url."""
    uri, env = sqitch.target(url)
    return subprocess.run(
        ["sqitch", *args, uri], cwd=PROJECT_DIR, env={**os.environ, **env}, capture_output=True, text=True, check=False
    )


def test_wrapper_loads_pgmq_sql_only_install_once(cluster, db):
    db.execute("CREATE DATABASE wh_pgmq_only")
    url = cluster.url("wh_pgmq_only")
    assert ensure_pgmq(url) is True
    assert ensure_pgmq(url) is False  # found the second time: never loaded twice
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT to_regprocedure('pgmq.send(text,jsonb)') IS NOT NULL").fetchone()[0]
