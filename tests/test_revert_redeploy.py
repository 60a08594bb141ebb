"""A full revert and redeploy under a running relay (`whatsapp-handler serve` on an embedded
cluster of its own, as pg_cron needs its database): the logins of every group keep their
rights, the settings, reply texts, job schedules and analyst scopes a DBA set come back, and
the relay answers for its channels again without a restart."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from app import sqitch
from app.cluster import LocalCluster
from app.database import SERVICE_LOGINS
from app.settings import Settings
from kit import payloads
from kit.services import free_port
from tests.conftest import CRON_DB, copy_embedded
from tests.relay import BIN, CHANNELS, OTP_KEY, PUBLIC_BASE_URL, Servers, post_meta

DATABASE = "whatsapp_handler"
RELAY_LOGIN = SERVICE_LOGINS["relay"][0]
WORKER_LOGIN = SERVICE_LOGINS["worker"][0]
CONSUMER, ANALYST, PASSWORD = "wh_rr_consumer", "wh_rr_analyst", "rr-login-password"
BACK_SECONDS = 30


@pytest.fixture
def embedded() -> Iterator[LocalCluster]:
    home = Path(tempfile.mkdtemp(prefix="wh-test-revert-redeploy-"))
    home.chmod(0o755)
    cluster = LocalCluster(home=home, port=free_port(), bindir=Settings().pg_bindir)
    yield cluster
    if cluster.is_running():
        cluster.stop("immediate")
    shutil.rmtree(home, ignore_errors=True)


def environment(cluster: LocalCluster) -> dict[str, str]:
    return {
        "WHATSAPP_HANDLER_EMBEDDED_DIR": str(cluster.home),
        "WHATSAPP_HANDLER_EMBEDDED_PORT": str(cluster.port),
        "WHATSAPP_HANDLER_CHANNELS": json.dumps(CHANNELS),
        "WHATSAPP_HANDLER_PUBLIC_BASE_URL": PUBLIC_BASE_URL,
        "WHATSAPP_HANDLER_OTP_API_KEYS": json.dumps([OTP_KEY]),
    }


def cli(cluster: LocalCluster, cwd: Path, *args: str) -> str:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("WHATSAPP_HANDLER_", "GRANIAN_"))}
    result = subprocess.run(
        [str(BIN / "whatsapp-handler"), *args],
        env=clean | environment(cluster),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


def admin(cluster: LocalCluster) -> psycopg.Connection[dict[str, Any]]:
    return psycopg.connect(cluster.url(DATABASE), autocommit=True, row_factory=dict_row)


def login(cluster: LocalCluster, user: str) -> psycopg.Connection[dict[str, Any]]:
    password = PASSWORD if user in (CONSUMER, ANALYST) else cluster.login_password_file(user).read_text().strip()
    return psycopg.connect(cluster.url(DATABASE, user=user, password=password), autocommit=True, row_factory=dict_row)


def rights(cluster: LocalCluster) -> dict[str, object]:
    """What each login may do, as it would do it."""
    seen: dict[str, object] = {}
    with login(cluster, WORKER_LOGIN) as conn:
        seen["worker claims"] = len(conn.execute("SELECT * FROM whatsapp_handler.worker_claim(1, 1)").fetchall()) >= 0
    with login(cluster, CONSUMER) as conn:
        seen["consumer reads"] = len(conn.execute("SELECT * FROM whatsapp_handler.outbox_read(1, 1)").fetchall()) >= 0
    with login(cluster, ANALYST) as conn:
        rows = conn.execute("SELECT channel_id, name FROM analytics.channels ORDER BY channel_id").fetchall()
        seen["analyst sees"] = [(r["channel_id"], r["name"]) for r in rows]
    with login(cluster, RELAY_LOGIN) as conn:
        seen["relay groups"] = conn.execute(
            "SELECT pg_has_role(current_user, 'whatsapp_handler_relay', 'MEMBER') AS m"
        ).fetchone()["m"]
    return seen


def dba_state(conn: psycopg.Connection[dict[str, Any]]) -> dict[str, object]:
    return {
        "settings": conn.execute("SELECT key, value FROM whatsapp_handler.settings ORDER BY key").fetchall(),
        "texts": conn.execute("SELECT key, language, body FROM whatsapp_handler.reply_texts ORDER BY 1, 2").fetchall(),
        "jobs": conn.execute(
            "SELECT jobname, schedule, active FROM cron.job WHERE jobname LIKE 'whatsapp_handler.%' ORDER BY 1"
        ).fetchall(),
        "channels": conn.execute(
            "SELECT id, provider::text, provider_ref, phone, name FROM whatsapp_handler.channels ORDER BY id"
        ).fetchall(),
        "scopes": conn.execute(
            "SELECT analyst, all_channels, channel_ids FROM whatsapp_handler.analyst_channels"
        ).fetchall(),
    }


def taken(cluster: LocalCluster, base: str, prefix: str) -> list[int]:
    """Signed webhooks for a configured channel until one is ingested (not dead-lettered: the
    relay answers 200 to both), or BACK_SECONDS pass; the relay's answers, in order."""
    statuses: list[int] = []
    deadline = time.monotonic() + BACK_SECONDS
    while time.monotonic() < deadline:
        message_id = f"{prefix}-{len(statuses)}"
        statuses.append(post_meta(base, payloads.meta_text("447700900123", message_id)).status_code)
        with admin(cluster) as conn:
            row = conn.execute(
                "SELECT count(*) AS n FROM whatsapp_handler.message_keys WHERE provider_message_id = %s", (message_id,)
            ).fetchone()
        if statuses[-1] == 200 and row["n"] == 1:
            return statuses
        time.sleep(0.5)
    pytest.fail(f"no webhook taken within {BACK_SECONDS} s; the relay answered {statuses}")


@pytest.fixture
def serving(embedded: LocalCluster, embedded_image: Path, http_server: Servers) -> str:
    """serve on its cluster, deployed first (`whatsapp-handler db deploy`, a copy of the session's), with
    a consumer login, an analyst scoped to one channel and a DBA's changes."""
    copy_embedded(embedded_image, embedded)
    base = http_server.start(environment(embedded), via_cli=True)
    # serve made the worker's login; the worker itself need not run to hold its rights.
    with admin(embedded) as conn:
        conn.execute(f"CREATE ROLE {CONSUMER} LOGIN PASSWORD '{PASSWORD}' IN ROLE whatsapp_handler_consumer")
        conn.execute(f"CREATE ROLE {ANALYST} LOGIN PASSWORD '{PASSWORD}'")
        support = conn.execute(
            "SELECT id FROM whatsapp_handler.channels WHERE provider_ref = %s", (payloads.META_PHONE_NUMBER_ID,)
        ).fetchone()["id"]
        conn.execute("SELECT whatsapp_handler.add_analyst(%s, ARRAY[%s]::bigint[])", (ANALYST, support))
        conn.execute("""UPDATE whatsapp_handler.settings SET value = '["44", "1"]' WHERE key = 'otp.country_codes'""")
        conn.execute("""UPDATE whatsapp_handler.settings SET value = '"90 seconds"' WHERE key = 'otp.cooldown'""")
        conn.execute(
            """UPDATE whatsapp_handler.settings SET value = '"https://terms.example.org"' WHERE key = 'terms.url'"""
        )
        conn.execute(
            "UPDATE whatsapp_handler.reply_texts SET body = 'Hello!' WHERE key = 'welcome' AND language = 'en-GB'"
        )
        conn.execute("UPDATE whatsapp_handler.jobs SET schedule = '*/5 * * * *' WHERE name = 'retention'")
        conn.execute("UPDATE whatsapp_handler.jobs SET enabled = false WHERE name = 'gdpr_inactive_users'")
    assert taken(embedded, base, "wamid.RR-BEFORE") == [200]
    return base


def test_a_full_revert_and_redeploy_under_a_running_relay_keeps_every_login_and_what_the_dba_set(
    embedded: LocalCluster, serving: str, tmp_path: Path
) -> None:
    before_rights = rights(embedded)
    assert before_rights["analyst sees"] and len(before_rights["analyst sees"]) == 1
    with admin(embedded) as conn:
        before = dba_state(conn)

    reverted = cli(embedded, tmp_path, "db", "revert", "--yes")
    cli(embedded, tmp_path, "db", "deploy")

    # At once: the channels came back with the deploy, not from serve's next look.
    assert taken(embedded, serving, "wamid.RR-AFTER") == [200]
    with admin(embedded) as conn:
        assert dba_state(conn) == before
        assert conn.execute("SELECT to_regnamespace('whatsapp_handler_kept') AS s").fetchone()["s"] is None
    assert rights(embedded) == before_rights
    cli(embedded, tmp_path, "db", "verify")
    # The DBA was told what stayed and why.
    assert "role whatsapp_handler_relay kept: granted to whatsapp_handler_relay_login" in reverted
    assert "the next deploy restores them" in reverted


def test_the_relay_adds_its_channels_again_when_a_redeploy_left_none(
    embedded: LocalCluster, serving: str, http_server: Servers, tmp_path: Path
) -> None:
    cli(embedded, tmp_path, "db", "revert", "--yes")
    with admin(embedded) as conn:
        # The DBA forgot what the revert kept: the channels come back from serve's configuration.
        conn.execute("DROP SCHEMA whatsapp_handler_kept CASCADE")
    cli(embedded, tmp_path, "db", "deploy")

    assert taken(embedded, serving, "wamid.RR-NONE")[-1] == 200
    with admin(embedded) as conn:
        refs = {r["provider_ref"] for r in conn.execute("SELECT provider_ref FROM whatsapp_handler.channels")}
    assert refs == {c["ref"] for c in CHANNELS}
    assert "configured channels missing from the database" in http_server.log_text()


def test_a_kept_value_never_overwrites_one_set_after_the_deploy_that_made_it(cluster: LocalCluster) -> None:
    # pg_cron's database, where a full revert and deploy can run; left deployed with its values.
    url = cluster.url(CRON_DB)
    setting = "SELECT value FROM whatsapp_handler.settings WHERE key = %s"
    update = "UPDATE whatsapp_handler.settings SET value = %s::jsonb WHERE key = %s"
    with psycopg.connect(url, autocommit=True) as conn:
        before = {key: conn.execute(setting, (key,)).fetchone()[0] for key in ("otp.window", "otp.per_window")}
        conn.execute(update, ('"2 hours"', "otp.window"))
        conn.execute(update, ("7", "otp.per_window"))
    try:
        sqitch.run("revert", url, capture=True)
        # A release without core/restore_kept, and a DBA's value set on it before the upgrade.
        sqitch.run("deploy", url, "--to", "@v1.0.0", capture=True)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(update, ("9", "otp.per_window"))
        upgraded = sqitch.run("deploy", url, capture=True)
        with psycopg.connect(url, autocommit=True) as conn:
            assert conn.execute(setting, ("otp.window",)).fetchone()[0] == "2 hours"
            assert conn.execute(setting, ("otp.per_window",)).fetchone()[0] == 9
        assert "setting otp.per_window keeps its value" in upgraded.stdout + upgraded.stderr
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            for key, value in before.items():
                conn.execute(update, (json.dumps(value), key))
