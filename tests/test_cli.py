"""The `whatsapp-handler` command, run as a subprocess as an operator would run it."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest

from app import sqitch
from app.cluster import LocalCluster
from app.settings import PROJECT_DIR, Settings
from kit import payloads
from tests.relay import CHANNELS, META_SECRET, Servers, post_meta, relay_environment

CLI = Path(sys.executable).parent / "whatsapp-handler"
SECRET = "s3cret-never-shown"
# Nothing listens on port 1: connecting is refused at once.
CLOSED_URL = f"postgresql://postgres:{SECRET}@127.0.0.1:1/whatsapp_handler"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_cli(*args: str, url: str | None, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("WHATSAPP_HANDLER_")}
    if url is not None:
        clean["WHATSAPP_HANDLER_DATABASE_URL"] = url
    # cwd is a fresh directory so that no developer's .env leaks into the settings.
    return subprocess.run(
        [str(CLI), *args], env={**clean, **env}, cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], code: int) -> str:
    assert result.returncode == code, result
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("whatsapp-handler: error: ")
    assert "Traceback" not in result.stderr + result.stdout
    return lines[0]


@pytest.fixture
def test_url(cluster: LocalCluster, db_name: str) -> str:
    return f"postgresql://postgres:{quote(cluster.password(), safe='')}@127.0.0.1:{cluster.port}/{db_name}"


@pytest.mark.parametrize(
    "command",
    [(), ("db",), ("db", "deploy"), ("db", "revert"), ("db", "verify"), ("db", "status"), ("cluster",)]
    + [("cluster", action) for action in ("start", "stop", "status")]
    + [("serve",)],
)
def test_every_command_has_help(command: tuple[str, ...], tmp_path: Path) -> None:
    result = run_cli(*command, "--help", url=None, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: whatsapp-handler {' '.join(command)}".rstrip())


def test_db_status_says_the_clone_is_up_to_date(test_url: str, tmp_path: Path) -> None:
    result = run_cli("db", "status", url=test_url, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "up-to-date" in result.stdout


def test_db_verify_passes_on_a_deployed_database(test_url: str, tmp_path: Path) -> None:
    result = run_cli("db", "verify", url=test_url, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Verify successful" in result.stdout


def test_db_deploy_is_idempotent(test_url: str, tmp_path: Path) -> None:
    result = run_cli("db", "deploy", url=test_url, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Nothing to deploy" in result.stdout


def test_db_revert_without_yes_is_refused_and_reverts_nothing(test_url: str, tmp_path: Path) -> None:
    line = assert_one_line_error(run_cli("db", "revert", url=test_url, cwd=tmp_path), code=2)
    assert "--yes" in line
    assert "up-to-date" in run_cli("db", "status", url=test_url, cwd=tmp_path).stdout


def test_db_revert_with_yes_and_to_reverts_the_changes_after_it(test_url: str, tmp_path: Path) -> None:
    # To the change before the last (sqitch's @HEAD^): what --to does is the same for one change
    # reverted as for a hundred, and reverting them all is test_plan.py's round trip.
    before_last, last = sqitch.plan_changes(PROJECT_DIR / "sqitch.plan")[-2:]
    result = run_cli("db", "revert", "--yes", "--to", "@HEAD^", url=test_url, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"- {last.name} " in result.stdout or f"- {last.name}\n" in result.stdout, result.stdout
    status = run_cli("db", "status", url=test_url, cwd=tmp_path)
    assert f"# Name:     {before_last.name}\n" in status.stdout, status.stdout
    assert "up-to-date" not in status.stdout


@pytest.mark.parametrize("command", [("db", "status"), ("db", "deploy"), ("db", "verify"), ("serve",)])
def test_unreachable_database_is_one_line_without_the_password(command: tuple[str, ...], tmp_path: Path) -> None:
    result = run_cli(*command, url=CLOSED_URL, cwd=tmp_path)
    line = assert_one_line_error(result, code=1)
    assert "port 1" in line
    assert SECRET not in result.stderr + result.stdout


def test_malformed_url_does_not_echo_the_password(tmp_path: Path) -> None:
    result = run_cli("db", "status", url=f"postgresql://postgres:{SECRET}@127.0.0.1:notaport/db", cwd=tmp_path)
    assert_one_line_error(result, code=1)
    assert SECRET not in result.stderr + result.stdout


def test_cluster_start_refuses_when_an_external_database_is_configured(tmp_path: Path) -> None:
    result = run_cli("cluster", "start", url=CLOSED_URL, cwd=tmp_path)
    line = assert_one_line_error(result, code=1)
    assert "external database" in line
    assert SECRET not in result.stderr + result.stdout


def test_invalid_setting_names_the_variable(tmp_path: Path) -> None:
    result = run_cli("db", "status", url=CLOSED_URL, cwd=tmp_path, WHATSAPP_HANDLER_HTTP_PORT="70000")
    line = assert_one_line_error(result, code=1)
    assert "WHATSAPP_HANDLER_HTTP_PORT" in line


@pytest.mark.parametrize("args", [(), ("db",), ("db", "drop"), ("nope",), ("db", "status", "--to", "x")])
def test_usage_errors_are_one_line_and_exit_2(args: tuple[str, ...], tmp_path: Path) -> None:
    assert_one_line_error(run_cli(*args, url=CLOSED_URL, cwd=tmp_path), code=2)


@pytest.fixture
def embedded_home() -> Iterator[Path]:
    home = Path(tempfile.mkdtemp(prefix="wh-test-embedded-"))
    # Traversable, so that as root resolve_home keeps it rather than choosing a stand-in under /var/lib.
    home.chmod(0o755)
    yield home
    cluster = LocalCluster(home=home, port=0, bindir=Settings().pg_bindir)
    if cluster.is_running():
        cluster.stop("immediate")
    shutil.rmtree(home, ignore_errors=True)


def test_embedded_cluster_start_status_stop(embedded_home: Path, tmp_path: Path) -> None:
    env = {"WHATSAPP_HANDLER_EMBEDDED_DIR": str(embedded_home), "WHATSAPP_HANDLER_EMBEDDED_PORT": str(free_port())}
    assert run_cli("cluster", "status", url=None, cwd=tmp_path, **env).returncode == 3

    started = run_cli("cluster", "start", url=None, cwd=tmp_path, **env)
    assert started.returncode == 0, started.stderr
    password = (embedded_home / "superuser.password").read_text().strip()
    assert "password=***" in started.stdout
    assert password not in started.stdout + started.stderr
    assert str(embedded_home) in started.stderr

    again = run_cli("cluster", "start", url=None, cwd=tmp_path, **env)
    assert (again.returncode, again.stdout) == (0, started.stdout)
    running = run_cli("cluster", "status", url=None, cwd=tmp_path, **env)
    assert (running.returncode, "running" in running.stdout) == (0, True)

    assert run_cli("cluster", "stop", url=None, cwd=tmp_path, **env).returncode == 0
    stopped = run_cli("cluster", "status", url=None, cwd=tmp_path, **env)
    assert (stopped.returncode, "stopped" in stopped.stdout) == (3, True)


def test_serve_registers_the_channels_and_serves_as_the_relays_login(
    http_server: Servers, test_url: str, relay_db_url: str, db: psycopg.Connection
) -> None:
    env = relay_environment(relay_db_url) | {"WHATSAPP_HANDLER_DATABASE_URL": test_url}
    base = http_server.start(env, via_cli=True)
    rows = db.execute("SELECT provider::text, provider_ref, phone, name FROM whatsapp_handler.channels").fetchall()
    registered = {(r["provider"], r["provider_ref"], r["phone"], r["name"]) for r in rows}
    assert registered == {(c["provider"], c["ref"], c["phone"], c["name"]) for c in CHANNELS}
    assert post_meta(base, payloads.meta_text("447700900123", "wamid.CLI")).status_code == 200
    sessions = db.execute(
        "SELECT DISTINCT usename FROM pg_stat_activity WHERE application_name = 'whatsapp-handler-relay'"
    ).fetchall()
    assert sessions == [{"usename": "wh_test_relay"}]
    assert META_SECRET not in http_server.log_text()


@pytest.mark.parametrize(
    ("channels", "says"),
    [
        (f'[{{"provider": "meta", "ref": "1", "phone": "555", "name": "x", "secret": "{SECRET}"}}]',
         "CHANNELS_0_PHONE"),
        (f'[{{"provider": "meta", "ref": "1", "phone": "+15550001111", "name": "x", "secret": "{SECRET}"', "channels"),
        (f'[{{"provider": "twilio", "ref": "whatsapp:+15550001111", "phone": "+15550001111", "name": "x",'
         f' "secret": "{SECRET}"}}]', "public_base_url"),
    ],
    ids=["bad-phone", "not-json", "twilio-without-public-url"],
)  # fmt: skip
def test_invalid_channels_are_one_line_without_the_secret(channels: str, says: str, tmp_path: Path) -> None:
    result = run_cli("serve", url=CLOSED_URL, cwd=tmp_path, WHATSAPP_HANDLER_CHANNELS=channels)
    line = assert_one_line_error(result, code=1)
    assert says in line
    assert SECRET not in result.stderr + result.stdout


SHORT_SECRET = "Qx7-kP2v$Lm9zR4"  # 15 characters


@pytest.mark.parametrize(
    "channel",
    [
        {"provider": "meta", "ref": "106540352242922", "phone": "+15550001111", "name": "x", "secret": SHORT_SECRET},
        {"provider": "twilio", "ref": "whatsapp:+15550002222", "phone": "+15550002222", "name": "x",
         "secret": SHORT_SECRET},
        {"provider": "evolution", "ref": "shop", "phone": "+15550003333", "name": "x", "secret": SHORT_SECRET},
    ],
    ids=lambda c: c["provider"],
)  # fmt: skip
def test_a_channel_secret_under_16_characters_is_refused_naming_the_variable_only(
    channel: dict[str, str], tmp_path: Path
) -> None:
    result = run_cli(
        "serve",
        url=CLOSED_URL,
        cwd=tmp_path,
        WHATSAPP_HANDLER_CHANNELS=json.dumps([channel]),
        WHATSAPP_HANDLER_PUBLIC_BASE_URL="https://hooks.example.com",
    )
    line = assert_one_line_error(result, code=1)
    assert "WHATSAPP_HANDLER_CHANNELS_0_SECRET" in line
    assert "at least 16 characters" in line
    # Neither the value nor its length.
    assert SHORT_SECRET not in result.stderr + result.stdout
    assert "15" not in line


def test_a_channel_secret_of_16_characters_is_taken() -> None:
    from app.settings import ChannelConfig

    config = ChannelConfig(provider="evolution", ref="shop", phone="+15550003333", name="x", secret=SHORT_SECRET + "!")
    assert config.secret.get_secret_value() == SHORT_SECRET + "!"
    # The fixtures every other test configures pass the floor.
    for fixture in CHANNELS:
        ChannelConfig(**fixture)


def test_every_setting_is_in_env_example_and_docs() -> None:
    example = (PROJECT_DIR / ".env.example").read_text()
    docs = (PROJECT_DIR / "docs" / "configuration.md").read_text()
    for name in Settings.model_fields:
        assert f"WHATSAPP_HANDLER_{name.upper()}=" in example, name
        assert f"`{name.upper()}`" in docs, name
