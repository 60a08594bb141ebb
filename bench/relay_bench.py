"""Relay benchmark (issue 3): signed Meta webhooks over loopback against a durable
PostgreSQL (fsync and synchronous_commit on), next to the SQL-only rate of the same
ingest function under pgbench. Run by hand; results go to bench/RESULTS.md.

    .venv/bin/python bench/relay_bench.py [--duration 20] [--rate 2000]

Needs wrk and pgbench (Debian packages wrk, postgresql-client-15).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import psycopg
import uvloop

from app.cluster import LocalCluster
from kit import load, services
from kit.durable import BENCH, PHONE_NUMBER_ID, add_login, durable_cluster, load_known_users, pgbench
from kit.services import SECRET
from kit.signing import meta_signature

RELAY_PASSWORD = "bench-relay-password"  # noqa: S105 - a throwaway cluster's, made and deleted by this run
USERS = 100_000


def meta_body(n: int) -> bytes:
    return load.meta_body(str(447700000000 + n % USERS), f"wamid.{uuid.uuid4().hex}")


def start_database(home: Path) -> LocalCluster:
    pg = durable_cluster(home)
    load_known_users(pg)
    add_login(pg, "bench_relay", RELAY_PASSWORD, "whatsapp_handler_relay")
    return pg


def start_relay(pg: LocalCluster, log: Path, workers: int) -> tuple[subprocess.Popen, int]:
    channel = {"provider": "meta", "ref": PHONE_NUMBER_ID, "phone": "+15550001111", "name": "Bench", "secret": SECRET}
    url = pg.url("bench", user="bench_relay", password=RELAY_PASSWORD)
    return services.start_relay(url, [channel], log, workers, pool_max_size="16")


def wrk(port: int, bodies: Path, duration: int, connections: int) -> dict[str, float]:
    out = subprocess.run(
        ["wrk", "-t", "1", "-c", str(connections), "-d", f"{duration}s", "--latency", "-s",
         str(BENCH / "signed_bodies.lua"), f"http://127.0.0.1:{port}"],
        env={**os.environ, "BODIES": str(bodies)}, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50_ms": _ms(re.search(r"50%\s+([\d.]+\w+)", out).group(1)),
        "p99_ms": _ms(re.search(r"99%\s+([\d.]+\w+)", out).group(1)),
        "non_2xx": float(non2xx.group(1)) if non2xx else 0.0,
    }


def _ms(value: str) -> float:
    number, unit = re.match(r"([\d.]+)(\w+)", value).groups()
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


async def open_loop(port: int, requests: list[bytes], rate: float, connections: int = 128) -> dict[str, float]:
    """Send at a fixed rate whatever the answers do; latency counts from the scheduled
    send time, so a stall shows in the percentiles instead of slowing the sender. The
    connections are opened first; `send_lag` is the generator's own delay (scheduled to
    written), to tell its slowness from the relay's."""
    idle: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
    for _ in range(connections):
        idle.put_nowait(await asyncio.open_connection("127.0.0.1", port))
    latencies: list[float] = []
    lags: list[float] = []
    errors = 0

    async def one(request: bytes, scheduled: float) -> None:
        nonlocal errors
        reader, writer = await idle.get()
        lags.append(time.perf_counter() - scheduled)
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(re.search(rb"(?i)content-length: (\d+)", head).group(1))
        await reader.readexactly(length)
        latencies.append(time.perf_counter() - scheduled)
        errors += not head.startswith(b"HTTP/1.1 200")
        idle.put_nowait((reader, writer))

    tasks = []
    start = time.perf_counter()
    for i, request in enumerate(requests):
        scheduled = start + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(request, scheduled)))
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - start
    latencies.sort()
    lags.sort()
    return {
        "sent_per_s": len(requests) / elapsed,
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * latencies[int(0.99 * len(latencies)) - 1],
        "send_lag_p99_ms": 1000 * lags[int(0.99 * len(lags)) - 1],
        "over_1s": sum(lat > 1 for lat in latencies) / len(latencies),
        "errors": errors,
    }


def http_request(body: bytes) -> bytes:
    head = (f"POST /webhooks/meta HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
            f"X-Hub-Signature-256: {meta_signature(body, SECRET)}\r\nContent-Length: {len(body)}\r\n\r\n")  # fmt: skip
    return head.encode() + body


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=20)
    parser.add_argument("--rate", type=float, default=2000)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--workers", type=int, default=1, help="granian worker processes")
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="wh-bench-"))
    pg = start_database(home)
    relay = None
    try:
        sql_rate = pgbench(pg, args.duration)
        # The relay's own call under load: ingest_batch with 16 webhooks, 4 clients (its ingest slots).
        sql_batch_rate = 16 * pgbench(pg, args.duration, "ingest_batch16.pgbench", clients=4)
        relay, port = start_relay(pg, home.parent / f"{home.name}-relay.log", args.workers)
        bodies = home.parent / f"{home.name}-bodies.tsv"
        with bodies.open("w") as f:
            for n in range(int(args.duration * 8000)):
                body = meta_body(n)
                f.write(f"{meta_signature(body, SECRET)}\t{body.decode()}\n")
        peak = wrk(port, bodies, args.duration, args.connections)
        fixed = uvloop.run(open_loop(port, [http_request(meta_body(n)) for n in range(int(args.rate * args.duration))],
                                      args.rate))  # fmt: skip
        with psycopg.connect(pg.url("bench")) as conn:
            stored = conn.execute("SELECT count(*) FROM whatsapp_handler.messages").fetchone()[0]
        print(json.dumps({"sql_only_tps": round(sql_rate), "sql_only_batch16_webhooks_per_s": round(sql_batch_rate),
                          "relay_peak": peak, "relay_fixed_rate": fixed,
                          "ratio_relay_to_sql": round(peak["rps"] / sql_rate, 2),
                          "ratio_relay_to_sql_batch16": round(peak["rps"] / sql_batch_rate, 2),
                          "messages_stored": stored}, indent=2))  # fmt: skip
    finally:
        if relay is not None:
            os.killpg(relay.pid, signal.SIGTERM)
            relay.wait(timeout=10)
        pg.stop("immediate")
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
