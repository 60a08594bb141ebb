"""What the fault suite and the soak share (and the relay and worker benchmarks use): the
relay, the worker and the provider double as processes on loopback, next to a durable
cluster from bench/durable.py; a signed-load generator that keeps, per webhook, its id
and how it ended; and memory figures of process trees read from /proc.

The double runs as `python -m bench.stack double --port N`: tests/provider_double.py with
two more routes, `POST /_answer` (what to answer from now on, e.g. ["slow", 1.5]) and
`GET /_deliveries` (what it accepted), so that a run can count deliveries per message.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import hmac
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from app.cluster import LocalCluster
from bench.durable import BENCH, PHONE_NUMBER_ID, add_login, durable_cluster, free_port, load_known_users

BIN = Path(sys.executable).parent
SECRET = "bench-app-secret"  # noqa: S105 - a throwaway cluster's, made and deleted by each run
STARTUP_SECONDS = 30


# Signed webhooks --------------------------------------------------------------------------------
def meta_body(wa_id: str, wamid: str, ref: str = PHONE_NUMBER_ID, text: str = "hello") -> bytes:
    """A Meta webhook carrying one text message from wa_id to the channel ref."""
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550001111", "phone_number_id": ref},
        "contacts": [{"profile": {"name": "Ana"}, "wa_id": wa_id}],
        "messages": [{"from": wa_id, "id": wamid, "timestamp": "1700000000", "type": "text", "text": {"body": text}}],
    }
    entry = {"id": "1", "changes": [{"field": "messages", "value": value}]}
    body = {"object": "whatsapp_business_account", "entry": [entry]}
    return json.dumps(body, separators=(",", ":")).encode()


def signature(body: bytes, secret: str = SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


# Processes ----------------------------------------------------------------------------------------
def start_database(home: Path, prefix: str) -> tuple[LocalCluster, str, str]:
    """A durable cluster with the known users on the bench channel, and the URLs of a relay
    login and a worker login named after prefix."""
    pg = durable_cluster(home)
    load_known_users(pg)
    relay_url = add_login(pg, f"{prefix}_relay", f"{prefix}-relay-password", "whatsapp_handler_relay")
    worker_url = add_login(pg, f"{prefix}_worker", f"{prefix}-worker-password", "whatsapp_handler_worker")
    return pg, relay_url, worker_url


def service_env(**settings: object) -> dict[str, str]:
    """The caller's environment without its WHATSAPP_HANDLER_* settings (except the group-commit
    ones, which benchmarks compare), plus these settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WHATSAPP_HANDLER_") or "_INGEST_" in k}
    for key, value in settings.items():
        env[f"WHATSAPP_HANDLER_{key.upper()}"] = value if isinstance(value, str) else json.dumps(value)
    return env


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


def start_double(log: Path, module: str = "bench.stack") -> tuple[subprocess.Popen, int]:
    """The provider double as a process: this module's (records deliveries, takes orders) or
    tests.provider_double's (answers ok, keeps nothing)."""
    port = free_port()
    args = [sys.executable, "-m", module] + (["double"] if module == "bench.stack" else []) + ["--port", str(port)]
    proc = subprocess.Popen(args, cwd=BENCH.parent, stdout=log.open("ab"), stderr=subprocess.STDOUT)
    for _ in range(100):
        try:
            if module == "bench.stack":  # a probe through the send routes would count as a delivery
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


# Memory ---------------------------------------------------------------------------------------
def process_tree(root: int) -> list[int]:
    """root and its descendants, from /proc/*/stat (the parent is the field after the state)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        parents.setdefault(ppid, []).append(int(entry.name))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(parents.get(pid, []))
    return tree


def memory_kib(pids: list[int]) -> dict[str, int]:
    """Summed Rss, Pss and RssAnon (kB) of these processes; one that exited meanwhile counts nothing.
    RssAnon leaves out shared memory (PostgreSQL's shared buffers, which fill up to their size and
    stop), so it is where a process's own leak would show."""
    total = {"rss": 0, "pss": 0, "anon": 0}
    for pid in pids:
        try:
            rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        total["rss"] += _kib(rollup, "Rss")
        total["pss"] += _kib(rollup, "Pss")
        total["anon"] += _kib(status, "RssAnon")
    return total


def _kib(text: str, name: str) -> int:
    for line in text.splitlines():
        if line.startswith(name + ":"):
            return int(line.split()[1])
    return 0


def postmaster_pid(data_dir: Path) -> int | None:
    try:
        return int((data_dir / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


# The double, told what to answer --------------------------------------------------------------
def answer(port: int, *how: object) -> None:
    """What the double answers from now on: ("ok",), ("slow", seconds), ("status", 503), ..."""
    httpx.post(f"http://127.0.0.1:{port}/_answer", json=list(how), timeout=5).raise_for_status()


def deliveries(port: int) -> list[dict]:
    """Every request the double accepted (2xx), with `repeat` true when its idempotency key
    had been accepted before (the double answered the first result and delivered nothing)."""
    response = httpx.get(f"http://127.0.0.1:{port}/_deliveries", timeout=30)
    response.raise_for_status()
    return response.json()


def content_key(path: str, body: dict[str, Any]) -> str:
    """What makes a delivery that message: channel, recipient and content (a code's template
    names no code, so that one person's OTP is one message whatever its digits)."""
    ref = path.split("/")[3] if path.startswith("/meta/") else path.rsplit("/", 1)[-1]
    to = body.get("to") or body.get("To") or body.get("number")
    content = body.get("text", {}).get("body") if isinstance(body.get("text"), dict) else body.get("Body")
    if body.get("type") == "template":
        content = "template:" + body["template"]["name"]
    return f"{ref}|{to}|{content}"


def serve_double(port: int) -> None:
    from aiohttp import web

    from tests.provider_double import ProviderDouble

    double = ProviderDouble()

    async def set_answer(request: web.Request) -> web.Response:
        double.always(tuple(await request.json()))
        return web.json_response({"ok": True})

    async def accepted(request: web.Request) -> web.Response:
        rows = [{"path": r.path, "key": content_key(r.path, r.body), "repeat": r.duplicate,
                 "idempotency_key": r.headers.get("Idempotency-Key")}
                for r in list(double.received) if 200 <= r.answer < 300]  # fmt: skip
        return web.json_response(rows)

    app = double.app()
    app.router.add_post("/_answer", set_answer)
    app.router.add_get("/_deliveries", accepted)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


# Signed load ----------------------------------------------------------------------------------
@dataclass
class Webhook:
    wamid: str
    wa_id: str
    ref: str
    status: int | None = None  # the last answer; None when no attempt got one
    attempts: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def acknowledged(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


@dataclass
class Answer:
    at: float  # monotonic time the answer (or the failure) came
    seconds: float  # from when the attempt was due
    ok: bool


class Load:
    """Signed Meta webhooks at a steady rate, open loop (a slow answer does not slow the sender),
    each retried as a provider would until it gets a 2xx or its retry window closes: backoff
    from 0.25 s doubling to 4 s. `port` is read at every attempt, so a restarted relay may move."""

    def __init__(self, port: Callable[[], int], rate: float, retry_window: float = 60.0, timeout: float = 10.0):
        self.port, self.rate, self.retry_window = port, rate, retry_window
        self.webhooks: list[Webhook] = []
        self.answers: list[Answer] = []
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._tasks: set[asyncio.Task] = set()

    async def run(self, duration: float, make: Callable[[int], Webhook], session: aiohttp.ClientSession) -> None:
        """Sends for `duration` seconds (numbering webhooks from len(self.webhooks)), then waits
        for the retries of what it sent."""
        start, first = time.monotonic(), len(self.webhooks)
        for i in range(int(duration * self.rate)):
            due = start + i / self.rate
            if (delay := due - time.monotonic()) > 0:
                await asyncio.sleep(delay)
            webhook = make(first + i)
            self.webhooks.append(webhook)
            task = asyncio.create_task(self._deliver(session, webhook, due))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        if self._tasks:
            await asyncio.gather(*list(self._tasks))

    async def _deliver(self, session: aiohttp.ClientSession, webhook: Webhook, due: float) -> None:
        body = meta_body(webhook.wa_id, webhook.wamid, webhook.ref)
        headers = {"Content-Type": "application/json", "X-Hub-Signature-256": signature(body)}
        give_up, pause = due + self.retry_window, 0.25
        while True:
            webhook.attempts += 1
            try:
                url = f"http://127.0.0.1:{self.port()}/webhooks/meta"
                async with session.post(url, data=body, headers=headers, timeout=self._timeout) as response:
                    await response.read()
                    webhook.status = response.status
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                webhook.status = None
                webhook.errors.append(type(exc).__name__)
            self.answers.append(Answer(time.monotonic(), time.monotonic() - due, webhook.acknowledged))
            if webhook.acknowledged or time.monotonic() + pause > give_up:
                return
            await asyncio.sleep(pause)
            due, pause = time.monotonic(), min(pause * 2, 4.0)


def client_session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256, force_close=False))


def main() -> None:
    parser = argparse.ArgumentParser(description="the provider double with a record and a control route")
    parser.add_argument("role", choices=["double"])
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    serve_double(args.port)


if __name__ == "__main__":
    main()
