"""The service as processes on loopback, for the benchmarks: the relay (granian), the worker and
the provider double, each given only the settings it is told (none of the caller's own
WHATSAPP_HANDLER_* but the group-commit ones), and stopped as a whole session."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from app.settings import PROJECT_DIR

BIN = Path(sys.executable).parent
# The secret of the benchmarks' Meta channels: the load signs with it, the relay checks it.
SECRET = "bench-app-secret"  # noqa: S105 - a throwaway cluster's, made and deleted by each run
STARTUP_SECONDS = 30


def free_port() -> int:
    """A loopback port free now (the caller binds it soon after)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def settings_env(**settings: object) -> dict[str, str]:
    """Settings as the service reads them from its environment: WHATSAPP_HANDLER_<NAME>, a string
    as it is and anything else (lists of channels, numbers) as JSON."""
    return {f"WHATSAPP_HANDLER_{k.upper()}": v if isinstance(v, str) else json.dumps(v) for k, v in settings.items()}


def service_env(**settings: object) -> dict[str, str]:
    """The caller's environment without its WHATSAPP_HANDLER_* settings (except the group-commit
    ones, which benchmarks compare), plus these settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WHATSAPP_HANDLER_") or "_INGEST_" in k}
    return env | settings_env(**settings)


def start_relay(database_url: str, channels: list[dict], log: Path, workers: int = 1,
                port: int | None = None, **settings: object) -> tuple[subprocess.Popen, int]:  # fmt: skip
    """granian serving the relay, in a session of its own (so that a signal reaches its workers);
    returns once /ready answers 200."""
    port = port or free_port()
    env = service_env(database_url=database_url, channels=channels, log_level="WARNING", **settings)
    cmd = [str(BIN / "granian"), "--interface", "asgi", "--factory", "--workers", str(workers), "--loop", "uvloop",
           "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning", "app.web:create_app"]  # fmt: skip
    proc = subprocess.Popen(cmd, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT, start_new_session=True)
    answer = "no answer"
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            ready = httpx.get(f"http://127.0.0.1:{port}/ready", timeout=1)
            if ready.status_code == 200:
                return proc, port
            answer = ready.text
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    stop(proc)
    raise SystemExit(f"relay did not become ready ({answer}); see {log}")


def start_double(log: Path, control: bool = True) -> tuple[subprocess.Popen, int]:
    """kit.provider_double as a process: with control, it records deliveries and takes orders
    (kit.provider_double's answer() and deliveries()); without, it answers ok and keeps nothing."""
    port = free_port()
    args = [sys.executable, "-m", "kit.provider_double", "--port", str(port)] + (["--control"] if control else [])
    proc = subprocess.Popen(args, cwd=PROJECT_DIR, stdout=log.open("ab"), stderr=subprocess.STDOUT)
    for _ in range(100):
        try:
            if control:  # a probe through the send routes would count as a delivery
                httpx.get(f"http://127.0.0.1:{port}/_deliveries", timeout=1)
            else:
                httpx.post(f"http://127.0.0.1:{port}/evolution/message/sendText/x", json={}, timeout=1)
            return proc, port
        except httpx.TransportError:
            time.sleep(0.1)
    raise SystemExit(f"the provider double did not start; see {log}")


def sending_channel(ref: str, phone: str, double_port: int, idempotency_header: str | None = None) -> dict:
    """A Meta channel whose sends go to the double; it also verifies webhooks signed with SECRET."""
    channel = {"provider": "meta", "ref": ref, "phone": phone, "name": f"Bench {ref}", "secret": SECRET,
               "access_token": "bench-token", "api_base_url": f"http://127.0.0.1:{double_port}/meta/v21.0"}  # fmt: skip
    return channel | ({"idempotency_header": idempotency_header} if idempotency_header else {})


def start_worker(worker_url: str, channels: list[dict], concurrency: int, log: Path,
                 **settings: object) -> subprocess.Popen:  # fmt: skip
    env = service_env(worker_database_url=worker_url, channels=channels, worker_concurrency=str(concurrency),
                      worker_batch=str(min(concurrency, 500)), worker_poll_interval="0.05", log_level="WARNING",
                      **settings)  # fmt: skip
    return subprocess.Popen([str(BIN / "whatsapp-handler"), "worker"], env=env, stdout=log.open("ab"),
                            stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip


def stop(proc: subprocess.Popen, sig: int = signal.SIGTERM, wait: float = 15) -> None:
    """Signal the process (its whole session when it leads one) and reap it; SIGKILL if it lingers."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig) if proc.pid == os.getpgid(proc.pid) else proc.send_signal(sig)
    try:
        proc.wait(wait)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL) if proc.pid == os.getpgid(proc.pid) else proc.kill()
        proc.wait(wait)
