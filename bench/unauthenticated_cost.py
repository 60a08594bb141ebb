"""What a webhook without valid credentials costs the relay (issue 11, finding 10).

Starts the relay (granian, one worker; its database unreachable, which a refused request never
needs) and posts webhooks that carry no valid credential: a Meta body with a wrong signature and
an Evolution body with a wrong apikey: small, just under the size up to which Evolution's body key
is looked for (256 KiB), and near the 4 MiB body limit. Prints the relay's CPU
time per request (the worker's process tree, from /proc) as a ratio to Meta's, and how long
`/health` takes while 100 such posts arrive at once.

    .venv/bin/python bench/unauthenticated_cost.py [--app-dir DIR] [--requests 40]

`--app-dir` serves the relay from another checkout of app/ (e.g. the previous commit's, from
`git archive HEAD~1 app sqitch.plan | tar -x -C /tmp/old`), to compare before and after.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import aiohttp
import httpx

from kit.procfs import process_tree
from kit.services import BIN, free_port, service_env, stop

ROOT = Path(__file__).resolve().parent.parent

META_SECRET = "bench-meta-secret"  # noqa: S105 - a throwaway relay's
EVOLUTION_KEY = "bench-evolution-apikey"
CHANNELS = [
    {"provider": "meta", "ref": "1234567890", "phone": "+15550001111", "name": "M", "secret": META_SECRET},
    {"provider": "evolution", "ref": "shop", "phone": "+15550003333", "name": "E", "secret": EVOLUTION_KEY},
]
LARGE = 4_000_000
TICKS = os.sysconf("SC_CLK_TCK")


def body(provider: str, size: int) -> bytes:
    """A body of about `size` bytes shaped like a history sync: many small objects, which is what
    makes JSON costly to parse (one long string would parse at memcpy speed)."""
    item = {"key": {"remoteJid": "447700900123@s.whatsapp.net", "fromMe": False, "id": "3EB0C767D71D"},
            "pushName": "Ana", "messageTimestamp": 1700000000, "message": {"conversation": "hello"}}  # fmt: skip
    n = max(1, size // len(json.dumps(item)))
    data = {"messages": [item] * n}
    if provider == "meta":
        return json.dumps({"object": "whatsapp_business_account", "entry": [{"changes": [{"value": data}]}]}).encode()
    return json.dumps({"event": "messages.set", "instance": "shop", "data": data, "apikey": "wrong-key"}).encode()


def headers(provider: str) -> dict[str, str]:
    sig = {"X-Hub-Signature-256": "sha256=" + "0" * 64} if provider == "meta" else {}
    return {"Content-Type": "application/json", **sig}


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / TICKS


def start(app_dir: Path, log: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    env = service_env(relay_database_url="postgresql://nobody@127.0.0.1:9/none", channels=CHANNELS,
                      log_level="WARNING") | {"PYTHONPATH": str(app_dir)}  # fmt: skip
    cmd = [str(BIN / "granian"), "--interface", "asgi", "--factory", "--workers", "1", "--loop", "uvloop",
           "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning", "app.web:create_app"]  # fmt: skip
    proc = subprocess.Popen(cmd, env=env, cwd=app_dir, stdout=log.open("wb"), stderr=subprocess.STDOUT,
                            start_new_session=True)  # fmt: skip
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return proc, port
        except httpx.TransportError:
            time.sleep(0.1)
    stop(proc)
    raise SystemExit(f"relay did not answer /health:\n{log.read_text()}")


def cpu_per_request(base: str, pids: list[int], provider: str, raw: bytes, n: int) -> tuple[float, set[int]]:
    statuses = set()
    with httpx.Client(timeout=60) as client:
        for _ in range(3):
            client.post(f"{base}/webhooks/{provider}", content=raw, headers=headers(provider))
        before = cpu_seconds(pids)
        for _ in range(n):
            statuses.add(client.post(f"{base}/webhooks/{provider}", content=raw, headers=headers(provider)).status_code)
        return (cpu_seconds(pids) - before) / n, statuses


async def health_under_load(base: str, provider: str, raw: bytes, posts: int = 100) -> list[float]:
    """/health latencies (s), one every 10 ms, while `posts` refused webhooks arrive at once."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=posts + 1)) as session:

        async def post() -> None:
            async with session.post(f"{base}/webhooks/{provider}", data=raw, headers=headers(provider)) as r:
                await r.read()

        load = asyncio.gather(*(post() for _ in range(posts)))
        latencies = []
        while not load.done():
            t = time.perf_counter()
            async with session.get(f"{base}/health") as r:
                await r.read()
            latencies.append(time.perf_counter() - t)
            await asyncio.sleep(0.01)
        await load
        return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--app-dir", type=Path, default=ROOT)
    parser.add_argument("--requests", type=int, default=40)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        proc, port = start(args.app_dir.resolve(), Path(tmp) / "relay.log")
        base = f"http://127.0.0.1:{port}"
        try:
            pids = process_tree(proc.pid)
            cost = {}
            for provider in ("meta", "evolution"):
                for label, size in (("small", 1_000), ("cap", 250_000), ("large", LARGE)):
                    raw = body(provider, size)
                    n = args.requests * (10 if label == "small" else 1)  # the clock ticks every 10 ms
                    cost[(provider, label)], statuses = cpu_per_request(base, pids, provider, raw, n)
                    print(f"{provider:9} {label:5} {len(raw):>9} B  {cost[(provider, label)] * 1000:7.2f} ms CPU"
                          f"  statuses {sorted(statuses)}")  # fmt: skip
            for label in ("small", "cap", "large"):
                print(f"evolution/meta CPU, {label} bodies: {cost[('evolution', label)] / cost[('meta', label)]:.2f}")
            print(f"evolution at the cap / meta large: {cost[('evolution', 'cap')] / cost[('meta', 'large')]:.2f}")
            for provider in ("meta", "evolution"):
                latencies = asyncio.run(health_under_load(base, provider, body(provider, LARGE)))
                median, worst = statistics.median(latencies) * 1000, max(latencies) * 1000
                print(f"/health during 100 concurrent {provider} posts of 4 MB: {len(latencies)} probes,"
                      f" median {median:.1f} ms, max {worst:.1f} ms")  # fmt: skip
        finally:
            stop(proc)


if __name__ == "__main__":
    main()
