"""serve's channel watcher (channels.watch): a process of its own, not a thread of the process granian
forks its workers from (a fork copies the locks another thread holds into a child where nobody
releases them). It adds back the configured channels a redeploy lost, stops when terminated, and ends
by itself once serve is gone. tests/test_revert_redeploy.py runs it under `serve` through a full
revert and redeploy."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest

from app import channels, sqitch
from app.settings import PROJECT_DIR, ChannelConfig
from tests.relay import CHANNELS, Servers, relay_environment

CONFIGS = [ChannelConfig.model_validate(c) for c in CHANNELS]
WAIT = 30.0
REFS = "SELECT provider_ref FROM whatsapp_handler.channels ORDER BY provider_ref"


def wait_for(check: Callable[[], Any], what: str, timeout: float = WAIT) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def gone(pid: int) -> bool:
    """Exited (and reaped by whoever adopted it), or a zombie left to reap."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


@pytest.fixture
def registered(db: psycopg.Connection, db_url: str) -> list[str]:
    channels.register(db_url, CONFIGS)
    return [r["provider_ref"] for r in db.execute(REFS).fetchall()]


def test_the_watcher_is_a_process_of_its_own_that_adds_lost_channels_back(
    db: psycopg.Connection, db_url: str, registered: list[str], capfd: pytest.CaptureFixture[str]
) -> None:
    threads = threading.active_count()
    lost = CONFIGS[-1]
    db.execute("DELETE FROM whatsapp_handler.channels WHERE provider_ref = %s", (lost.ref,))

    watcher = channels.watch(db_url, CONFIGS, sqitch.last_change(PROJECT_DIR / "sqitch.plan"), every=0.2)
    try:
        assert watcher is not None and watcher.pid != os.getpid()
        # Nothing runs beside the caller's thread: the process granian forks from stays single-threaded.
        assert threading.active_count() == threads
        assert "channel-watch" not in {t.name for t in threading.enumerate()}
        wait_for(lambda: [r["provider_ref"] for r in db.execute(REFS).fetchall()] == registered, "the channel back")
        wait_for(lambda: "configured channels missing from the database" in capfd.readouterr().err, "the warning")
        # The admin conninfo went through the pipe, not the command line every user's ps shows.
        assert db_url not in Path(f"/proc/{watcher.pid}/cmdline").read_text()
    finally:
        if watcher is not None:
            watcher.terminate()
            watcher.wait(10)
    assert watcher.returncode == -signal.SIGTERM


def test_no_channels_configured_no_watcher(db_url: str) -> None:
    assert channels.watch(db_url, [], sqitch.last_change(PROJECT_DIR / "sqitch.plan")) is None


def test_the_watcher_ends_once_serve_is_gone(db_url: str, registered: list[str], tmp_path: Path) -> None:
    # A stand-in for serve, SIGKILLed as the OOM killer would: no one is left to terminate the watcher.
    parent_code = textwrap.dedent(f"""
        import sys, time
        from app import channels, sqitch
        from app.settings import PROJECT_DIR, ChannelConfig
        from tests.relay import CHANNELS
        configs = [ChannelConfig.model_validate(c) for c in CHANNELS]
        change = sqitch.last_change(PROJECT_DIR / "sqitch.plan")
        print(channels.watch({db_url!r}, configs, change, every=0.2).pid, flush=True)
        time.sleep(300)
    """)
    parent = subprocess.Popen([sys.executable, "-c", parent_code], stdout=subprocess.PIPE, cwd=PROJECT_DIR, text=True)
    try:
        assert parent.stdout is not None
        watcher = int(parent.stdout.readline())
        assert not gone(watcher)
        parent.kill()
        parent.wait(10)
        wait_for(lambda: gone(watcher), "the watcher to end")
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait(10)


def test_serve_runs_the_watcher_beside_granian_not_inside_the_process_it_forks_from(
    http_server: Servers, relay_db_url: str, db_url: str
) -> None:
    http_server.start(relay_environment(relay_db_url) | {"WHATSAPP_HANDLER_DATABASE_URL": db_url}, via_cli=True)
    serve = http_server.procs[-1].pid

    def watchers() -> list[int]:
        """serve's children running app.channels."""
        found = []
        for entry in Path("/proc").iterdir():
            try:
                if (entry.name.isdigit() and int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == serve
                        and b"app.channels" in (entry / "cmdline").read_bytes()):  # fmt: skip
                    found.append(int(entry.name))
            except OSError:
                continue
        return found

    [watcher] = wait_for(watchers, "serve's channel watcher")
    http_server.stop_all()
    wait_for(lambda: gone(watcher), "the watcher to stop with serve")
