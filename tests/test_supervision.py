"""Supervision, with the signal the OOM killer sends: a SIGKILL of the relay's granian worker
process under a running `serve`, and of the delivery process under `whatsapp-handler worker`.
Each command replaces its dead process without outside help, logs it, counts it in its
/metrics, and gives up with a one-line error and a non-zero exit on a crash loop."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from app import supervise
from app.cli import build_parser
from app.settings import PROJECT_DIR, Settings
from kit import payloads as p
from kit.services import free_port
from tests import test_worker
from tests.relay import Servers, post_meta, relay_environment, scrape
from tests.test_worker import channels_config, queue_depth, say_hi

# The delivery worker's fixtures, as tests/test_worker.py makes them (the provider double, the
# channels in the database, `whatsapp-handler worker` processes stopped at teardown).
double = test_worker.double
channel_ids = test_worker.channel_ids
workers = test_worker.workers

WAIT = 60.0
WA_ID = "447700900123"
PROCESSED = ("whatsapp_webhook_requests_total", (("outcome", "processed"), ("provider", "meta")))
RELAY_RESTARTS = ("whatsapp_relay_worker_restarts_total", ())


def wait_for(check: Callable[[], Any], what: str, timeout: float = WAIT) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def children(pid: int) -> set[int]:
    """The live processes whose parent is pid, from /proc/*/stat (the field after the state)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            # serve's channel watcher (app/channels.py) is its child too, not a worker.
            watcher = b"app.channels" in (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z" and not watcher:
            found.add(int(entry.name))
    return found


def one_child(pid: int, other_than: int | None = None) -> int:
    def found() -> int | None:
        now = children(pid) - {other_than}
        return next(iter(now)) if len(now) == 1 else None

    return wait_for(found, f"one child process of {pid}")


def healthy(base: str) -> bool:
    try:
        return httpx.get(f"{base}/health", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def serve(http_server: Servers, relay_db_url: str, db_url: str) -> tuple[str, subprocess.Popen[bytes]]:
    env = relay_environment(relay_db_url) | {"WHATSAPP_HANDLER_DATABASE_URL": db_url}
    base = http_server.start(env, via_cli=True)
    return base, http_server.procs[-1]


def test_serve_replaces_a_relay_worker_killed_by_sigkill(
    http_server: Servers, relay_db_url: str, db_url: str, db: psycopg.Connection
) -> None:
    base, proc = serve(http_server, relay_db_url, db_url)
    assert post_meta(base, p.meta_text(WA_ID, "wamid.SUP-1")).status_code == 200
    before = scrape(base)
    assert before[RELAY_RESTARTS] == 0 and before[PROCESSED] == 1

    worker = one_child(proc.pid)
    os.kill(worker, signal.SIGKILL)
    replacement = one_child(proc.pid, other_than=worker)
    wait_for(lambda: healthy(base), "/health answering again")

    assert proc.poll() is None
    assert f"relay worker-1 (pid {worker}) killed by SIGKILL; starting another" in http_server.log_text()
    assert f"relay worker-1 replaced: pid {replacement}" in http_server.log_text()
    after = scrape(base)
    assert after[RELAY_RESTARTS] == 1
    # The dead worker's counts are still summed: the counters did not go back to zero.
    assert after[PROCESSED] == 1
    assert post_meta(base, p.meta_text(WA_ID, "wamid.SUP-2")).status_code == 200
    assert scrape(base)[PROCESSED] == 2


def test_serve_gives_up_on_a_crash_loop(
    http_server: Servers, relay_db_url: str, db_url: str, db: psycopg.Connection
) -> None:
    base, proc = serve(http_server, relay_db_url, db_url)
    worker = one_child(proc.pid)
    for death in range(1, supervise.DEATHS_ALLOWED + 2):
        os.kill(worker, signal.SIGKILL)
        if death <= supervise.DEATHS_ALLOWED:
            worker = one_child(proc.pid, other_than=worker)
            wait_for(lambda: healthy(base), "/health answering again")
    assert proc.wait(WAIT) == 1
    last = http_server.log_text().strip().splitlines()[-1]
    assert last.startswith(
        f"whatsapp-handler: error: relay worker processes died {supervise.DEATHS_ALLOWED + 1} times within "
        f"{supervise.WINDOW_SECONDS:g} s (the last, pid {worker}, killed by SIGKILL); giving up"
    ), last
    assert "Traceback" not in http_server.log_text()


def _metrics(port: int) -> str | None:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=1).text
    except httpx.TransportError:
        return None


def test_worker_replaces_a_delivery_process_killed_by_sigkill_mid_send(
    db: psycopg.Connection, channel_ids: dict[str, int], double: Any, workers: Any
) -> None:
    port = free_port()
    double.always(("slow", 1.0))
    for n in range(3):
        say_hi(db, f"44770090090{n}")
    # With an idempotency key the sends the dead process left in doubt go again, and are recognised.
    channels = channels_config(double, idempotency_header="Idempotency-Key")
    proc = workers.start(channels, worker_metrics_port=port)
    child = one_child(proc.pid)
    assert "whatsapp_worker_restarts_total 0.0" in wait_for(lambda: _metrics(port), "the worker's metrics")
    wait_for(lambda: len(double.received) == 3, "three sends under way")

    os.kill(child, signal.SIGKILL)
    replacement = one_child(proc.pid, other_than=child)
    double.always(("ok",))
    wait_for(lambda: queue_depth(db) == 0, "the queue settled")

    assert proc.poll() is None
    assert len({r.headers.get("Idempotency-Key") for r in double.deliveries()}) == 6
    assert f"delivery process (pid {child}) killed by SIGKILL; starting another" in workers.log()
    assert "whatsapp_worker_restarts_total 1.0" in wait_for(lambda: _metrics(port), "the new process's metrics")
    assert one_child(proc.pid) == replacement

    # SIGTERM is a clean stop: forwarded, the child exits 0, and nothing replaces it.
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0
    assert children(proc.pid) == set()


def test_worker_gives_up_on_a_crash_loop(
    db: psycopg.Connection, channel_ids: dict[str, int], double: Any, workers: Any
) -> None:
    proc = workers.start()
    child = one_child(proc.pid)
    for death in range(1, supervise.DEATHS_ALLOWED + 2):
        os.kill(child, signal.SIGKILL)
        if death <= supervise.DEATHS_ALLOWED:
            child = one_child(proc.pid, other_than=child)
    assert proc.wait(WAIT) == 1
    lines = workers.log().strip().splitlines()
    assert lines[-1] == (
        f"whatsapp-handler: error: the delivery process died {supervise.DEATHS_ALLOWED + 1} times within "
        f"{supervise.WINDOW_SECONDS:g} s (the last, pid {child}, killed by SIGKILL); giving up"
    ), lines[-3:]
    # The first restart came at once, each later one after twice the pause of the one before.
    pauses = [float(line.split(" starting another in ")[1].split(" s ")[0]) for line in lines if " in " in line
              and "starting another" in line]  # fmt: skip
    assert pauses == [0.0] + [supervise.BACKOFF_BASE * 2**k for k in range(supervise.DEATHS_ALLOWED - 1)]


@pytest.mark.parametrize("deaths", [1, supervise.DEATHS_ALLOWED, supervise.DEATHS_ALLOWED + 1])
def test_the_crash_loop_bound_counts_deaths_within_the_window(deaths: int) -> None:
    now = [0.0]
    loop = supervise.CrashLoop(supervise.DEATHS_ALLOWED, 60, clock=lambda: now[0])
    results = []
    for _ in range(deaths):
        results.append(loop.died())
        now[0] += 1
    assert results[-1] is (deaths > supervise.DEATHS_ALLOWED)
    # Deaths older than the window no longer count.
    now[0] += 60
    assert loop.died() is False and loop.recent == 1


# --- packaging: the systemd units and the Containerfile that docs/deployment.md describes ---

PACKAGING = PROJECT_DIR / "packaging"
INSTALL_DIR = "/opt/whatsapp-handler"
ENV_FILE = "/etc/whatsapp-handler/whatsapp-handler.env"
UNITS = {"whatsapp-handler.service": "serve", "whatsapp-handler-worker.service": "worker"}


def unit_settings(text: str) -> dict[str, list[str]]:
    """Key=value lines of a unit file, every section together (the keys used here are unique)."""
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            found.setdefault(key.strip(), []).append(value.strip())
    return found


def seconds(value: str) -> float:
    return float(value.removesuffix("s"))


@pytest.mark.parametrize(("unit", "command"), UNITS.items())
def test_the_systemd_units_supervise_the_commands_with_limits(unit: str, command: str, tmp_path: Path) -> None:
    text = (PACKAGING / "systemd" / unit).read_text()
    s = unit_settings(text)
    assert s["ExecStart"] == [f"{INSTALL_DIR}/.venv/bin/whatsapp-handler {command}"]
    assert build_parser().parse_args([command]).command == command
    assert s["User"] == ["whatsapp-handler"] and s["Group"] == ["whatsapp-handler"]
    assert s["EnvironmentFile"] == [ENV_FILE] and s["WorkingDirectory"] == [INSTALL_DIR]
    # The command gives up with exit 1 on a crash loop: systemd restarts it, a bounded number of times.
    assert s["Restart"] == ["on-failure"] and s["StartLimitBurst"] and s["StartLimitIntervalSec"]
    # An OOM kill of a worker process is the command's to handle, not a reason to stop the unit.
    assert s["OOMPolicy"] == ["continue"] and s["KillMode"] == ["mixed"] and s["KillSignal"] == ["SIGTERM"]
    assert s["MemoryMax"] and s["LimitNOFILE"]
    if command == "worker":
        # Room for the sends under way to finish after SIGTERM.
        assert seconds(s["TimeoutStopSec"][0]) > Settings.model_fields["provider_timeout"].default
    assert seconds(s["TimeoutStopSec"][0]) > 0

    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed: systemd's own check of the unit cannot run")
    # systemd's own parser, on a copy pointing at this checkout (it checks that ExecStart exists).
    copy = tmp_path / unit
    copy.write_text(text.replace(INSTALL_DIR, str(PROJECT_DIR)).replace(ENV_FILE, "/dev/null"))
    result = subprocess.run([analyze, "verify", str(copy)], capture_output=True, text=True, check=False)
    complaints = [line for line in (result.stdout + result.stderr).splitlines() if unit in line]
    assert result.returncode == 0 and complaints == [], result.stdout + result.stderr


def test_a_unit_systemd_would_not_parse_is_caught(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    text = (PACKAGING / "systemd" / "whatsapp-handler.service").read_text()
    copy = tmp_path / "whatsapp-handler.service"
    copy.write_text(text.replace(INSTALL_DIR, str(PROJECT_DIR)).replace(ENV_FILE, "/dev/null")
                    .replace("OOMPolicy=continue", "OOMPolicy=carry-on"))  # fmt: skip
    result = subprocess.run([analyze, "verify", str(copy)], capture_output=True, text=True, check=False)
    assert "whatsapp-handler.service" in result.stdout + result.stderr


def test_the_containerfile_copies_what_serve_reads_and_installs_what_it_runs() -> None:
    text = (PACKAGING / "Containerfile").read_text()
    lines = [line.strip() for line in text.splitlines()]
    copied = {src.rstrip("/") for line in lines if line.startswith("COPY ") for src in line.split()[1:-1]}
    assert all((PROJECT_DIR / path).exists() for path in copied), copied
    # The app finds the sqitch project next to app/ (an editable install keeps it there).
    plan_dirs = {"deploy", "revert", "verify"}
    assert {"app", "kit", "pyproject.toml", "sqitch.conf", "sqitch.plan"} | plan_dirs <= copied
    assert "pip install --no-cache-dir --disable-pip-version-check -e ." in text
    # bin/setup's packages, but the server's: the image runs against an external PostgreSQL.
    setup = (PROJECT_DIR / "bin" / "setup").read_text()
    needed = setup.split("packages=(", 1)[1].split(")", 1)[0].split()
    for package in needed:
        if not package.startswith("postgresql-15"):
            assert package in text, package
    assert "postgresql-client-15" in text  # sqitch runs psql
    assert 'ENTRYPOINT ["whatsapp-handler"]' in lines and 'CMD ["serve"]' in lines
    assert "USER whatsapp-handler" in lines and "STOPSIGNAL SIGTERM" in lines
