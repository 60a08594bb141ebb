"""The embedded default's logins: `serve` deploys as the superuser, then runs the HTTP app as a
login of the relay group and makes one of the worker group for `worker`; neither is a superuser,
their passwords live 0600 beside the superuser's, and configured URLs win."""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from app.cluster import LocalCluster
from app.database import SERVICE_LOGINS
from app.settings import Settings
from kit import payloads
from kit.services import free_port
from tests.conftest import copy_embedded
from tests.relay import BIN, CHANNELS, OTP_KEY, PUBLIC_BASE_URL, Servers, post_meta

RELAY_LOGIN, RELAY_GROUP = SERVICE_LOGINS["relay"]
WORKER_LOGIN, WORKER_GROUP = SERVICE_LOGINS["worker"]
DATABASE = "whatsapp_handler"


@pytest.fixture
def embedded() -> Iterator[LocalCluster]:
    home = Path(tempfile.mkdtemp(prefix="wh-test-serve-logins-"))
    # Traversable, so that as root resolve_home keeps it rather than choosing a stand-in under /var/lib.
    home.chmod(0o755)
    cluster = LocalCluster(home=home, port=free_port(), bindir=Settings().pg_bindir)
    yield cluster
    if cluster.is_running():
        cluster.stop("immediate")
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def deployed(embedded: LocalCluster, embedded_image: Path) -> LocalCluster:
    """The embedded cluster made and the plan deployed (`whatsapp-handler db deploy`, a copy of the
    session's): serve's own deploy then finds nothing to do, and its start fits the health wait."""
    copy_embedded(embedded_image, embedded)
    return embedded


def environment(cluster: LocalCluster, **extra: str) -> dict[str, str]:
    return {
        "WHATSAPP_HANDLER_EMBEDDED_DIR": str(cluster.home),
        "WHATSAPP_HANDLER_EMBEDDED_PORT": str(cluster.port),
        "WHATSAPP_HANDLER_CHANNELS": json.dumps(CHANNELS),
        "WHATSAPP_HANDLER_PUBLIC_BASE_URL": PUBLIC_BASE_URL,
        "WHATSAPP_HANDLER_OTP_API_KEYS": json.dumps([OTP_KEY]),
        **extra,
    }


def run(cluster: LocalCluster, cwd: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("WHATSAPP_HANDLER_", "GRANIAN_"))}
    return subprocess.run(
        [str(BIN / "whatsapp-handler"), *args],
        env=clean | environment(cluster, **extra),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


def sessions(cluster: LocalCluster, application: str) -> set[str]:
    with psycopg.connect(cluster.url(DATABASE), autocommit=True) as conn:
        rows = conn.execute(
            "SELECT DISTINCT usename FROM pg_stat_activity WHERE datname = %s AND application_name = %s",
            (DATABASE, application),
        ).fetchall()
    return {r[0] for r in rows}


def login_facts(cluster: LocalCluster, login: str) -> tuple[bool, bool, bool, list[str]]:
    with psycopg.connect(cluster.url(DATABASE), autocommit=True) as conn:
        role = conn.execute(
            "SELECT rolcanlogin, rolsuper, rolcreaterole OR rolcreatedb OR rolreplication OR rolbypassrls"
            " FROM pg_roles WHERE rolname = %s",
            (login,),
        ).fetchone()
        groups = conn.execute(
            "SELECT g.rolname FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid"
            " JOIN pg_roles u ON u.oid = m.member WHERE u.rolname = %s ORDER BY 1",
            (login,),
        ).fetchall()
    assert role is not None, f"no role {login}"
    return role[0], role[1], role[2], [g[0] for g in groups]


def stop(http_server: Servers) -> None:
    http_server.stop_all()
    http_server.procs.clear()


def test_serve_runs_the_app_and_makes_the_worker_login_without_the_superuser(
    deployed: LocalCluster, http_server: Servers, tmp_path: Path
) -> None:
    embedded = deployed
    base = http_server.start(environment(embedded), via_cli=True)
    assert post_meta(base, payloads.meta_text("447700900123", "wamid.LOGIN-1")).status_code == 200
    assert sessions(embedded, "whatsapp-handler-relay") == {RELAY_LOGIN}

    for login, group in SERVICE_LOGINS.values():
        assert login_facts(embedded, login) == (True, False, False, [group])
        kept = embedded.login_password_file(login)
        assert stat.S_IMODE(kept.stat().st_mode) == 0o600
        assert kept.read_text().strip() not in http_server.log_text()
    relay_password = embedded.login_password_file(RELAY_LOGIN).read_text()

    # A restart finds what the first made: same password, same login, still serving.
    stop(http_server)
    base = http_server.start(environment(embedded), via_cli=True)
    assert post_meta(base, payloads.meta_text("447700900123", "wamid.LOGIN-2")).status_code == 200
    assert sessions(embedded, "whatsapp-handler-relay") == {RELAY_LOGIN}
    assert embedded.login_password_file(RELAY_LOGIN).read_text() == relay_password
    assert login_facts(embedded, RELAY_LOGIN) == (True, False, False, [RELAY_GROUP])

    # The worker, started apart, connects as the worker's login.
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("WHATSAPP_HANDLER_", "GRANIAN_"))}
    log = tmp_path / "worker.log"
    with log.open("wb") as out:
        worker = subprocess.Popen(
            [str(BIN / "whatsapp-handler"), "worker"],
            env=clean | environment(embedded),
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 30
        while not (seen := sessions(embedded, "whatsapp-handler-worker")) and time.monotonic() < deadline:
            assert worker.poll() is None, log.read_text()
            time.sleep(0.2)
        assert seen == {WORKER_LOGIN}, log.read_text()
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=30)
    assert embedded.login_password_file(WORKER_LOGIN).read_text().strip() not in log.read_text()


def test_configured_logins_win_over_the_embedded_ones(deployed: LocalCluster, http_server: Servers) -> None:
    embedded = deployed
    with psycopg.connect(embedded.url(DATABASE), autocommit=True) as conn:
        conn.execute(f"CREATE ROLE wh_own_relay LOGIN PASSWORD 'own-relay-password' IN ROLE {RELAY_GROUP}")
    own = embedded.url(DATABASE, user="wh_own_relay", password="own-relay-password")
    base = http_server.start(environment(embedded, WHATSAPP_HANDLER_RELAY_DATABASE_URL=own), via_cli=True)
    assert post_meta(base, payloads.meta_text("447700900123", "wamid.OWN")).status_code == 200
    assert sessions(embedded, "whatsapp-handler-relay") == {"wh_own_relay"}


def test_a_worker_before_any_deploy_says_to_deploy_first(embedded: LocalCluster, tmp_path: Path) -> None:
    result = run(embedded, tmp_path, "worker")
    assert result.returncode == 1, result
    assert "deploy the plan first" in result.stderr
    assert "Traceback" not in result.stderr
    assert embedded.password() not in result.stderr
