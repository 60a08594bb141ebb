"""Soak (issue 6): signed Meta webhooks at a steady rate for a long while against the relay on
a durable PostgreSQL, the worker delivering the replies to the provider double and a consumer
taking the outbox, with latency, errors, memory and queue depths sampled at an interval. Ends
with the table of samples and a verdict on memory growth. Results go to bench/RESULTS.md.

    .venv/bin/python bench/soak.py [--duration 600] [--interval 10] [--rate 200]

Most webhooks come from bench/known_users.sql's users (active conversations: stored and
announced, no reply); one in --new-every is a first contact, which queues two replies.

The verdict, per series (relay RSS, worker RSS, PostgreSQL's anonymous memory RssAnon):
"growing" when the mean of the last minute exceeds the mean of the second minute by more
than max(10 %, 8 MiB) and the least-squares slope over the second half, carried over the
whole run, adds more than that too; otherwise "bounded". Both must say so, to keep one noisy
sample from deciding. The first minute is left out: pools, caches and plans fill up then.
PostgreSQL's PSS is sampled and shown, not judged: it climbs while the shared buffers fill.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import psycopg
import uvloop

from kit import services
from kit.durable import PHONE_NUMBER_ID, start_database
from kit.load import Load, Webhook, client_session
from kit.procfs import memory_kib, postmaster_pid, process_tree

QUEUES = "SELECT queue_name, depth FROM whatsapp_handler.queue_metrics()"
KNOWN_USERS = 100_000
# What the verdict judges. PostgreSQL's PSS is sampled too, but it climbs while the shared buffers
# fill (up to shared_buffers, 512 MB here); its processes' anonymous memory is where a leak would show.
SERIES = ("relay_rss_mb", "worker_rss_mb", "pg_anon_mb")


@dataclass
class Sample:
    t: int  # seconds since the load began
    answered: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    errors: int
    relay_rss_mb: float
    relay_pss_mb: float
    worker_rss_mb: float
    worker_pss_mb: float
    pg_pss_mb: float
    pg_anon_mb: float
    outbound: int
    outbox: int
    dead_letters: int
    load1: float  # the machine's one-minute load average: others share it


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else 0.0


def mb(kib: int) -> float:
    return round(kib / 1024, 1)


def slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of y over x (0 with fewer than two distinct x)."""
    if len({x for x, _ in points}) < 2:
        return 0.0
    mx = statistics.fmean(x for x, _ in points)
    my = statistics.fmean(y for _, y in points)
    return sum((x - mx) * (y - my) for x, y in points) / sum((x - mx) ** 2 for x, _ in points)


def growth(samples: list[Sample], series: str, duration: float) -> dict[str, object]:
    """The module's rule on one series; windows shrink with the run (a short run's "minute" is a
    tenth of it) so that the short mode exercises the same code."""
    minute = 60.0 if duration >= 300 else duration / 10
    points = [(s.t, getattr(s, series)) for s in samples]
    second = [y for x, y in points if minute < x <= 2 * minute] or [points[0][1]]
    last = [y for x, y in points if x > duration - minute] or [points[-1][1]]
    half = [(x, y) for x, y in points if x > duration / 2]
    rise = statistics.fmean(last) - statistics.fmean(second)
    projected = slope(half) * duration
    allowed = max(0.10 * statistics.fmean(second), 8.0)
    verdict = "growing" if rise > allowed and projected > allowed else "bounded"
    return {"series": series, "second_minute_mb": round(statistics.fmean(second), 1),
            "last_minute_mb": round(statistics.fmean(last), 1), "rise_mb": round(rise, 1),
            "slope_mb_per_min": round(slope(half) * 60, 3), "allowed_mb": round(allowed, 1),
            "verdict": verdict}  # fmt: skip


def sender(new_every: int):
    def make(i: int) -> Webhook:
        first_contact = i % new_every == 0
        wa_id = str(447800000000 + i) if first_contact else str(447700000000 + i % KNOWN_USERS)
        return Webhook(f"wamid.soak.{i}", wa_id, PHONE_NUMBER_ID)

    return make


class Soak:
    def __init__(self, home: Path, args: argparse.Namespace) -> None:
        self.home, self.args = home, args
        self.procs: dict[str, object] = {}
        self.samples: list[Sample] = []

    def start(self) -> None:
        a, log = self.args, self.home.parent / f"{self.home.name}"
        self.pg, relay_url, worker_url = start_database(self.home, "soak")
        self.procs["double"], double_port = services.start_double(Path(f"{log}-double.log"))
        channels = [services.sending_channel(PHONE_NUMBER_ID, "+15550001111", double_port)]
        self.double_port = double_port
        self.procs["worker"] = services.start_worker(worker_url, channels, 64, Path(f"{log}-worker.log"))
        self.procs["relay"], self.port = services.start_relay(relay_url, channels, Path(f"{log}-relay.log"), a.workers)

    def stop(self) -> None:
        for proc in self.procs.values():
            services.stop(proc)
        self.pg.stop("immediate")

    async def sample(self, conn: psycopg.AsyncConnection, load: Load, t: int, since: int) -> Sample:
        window = load.answers[since:]
        ms = [1000 * a.seconds for a in window]
        relay = memory_kib(process_tree(self.procs["relay"].pid))
        worker = memory_kib(process_tree(self.procs["worker"].pid))
        pg = memory_kib(process_tree(postmaster_pid(self.pg.data_dir) or -1))
        depth = dict(await (await conn.execute(QUEUES)).fetchall())
        return Sample(t, len(window), round(percentile(ms, 0.5), 1), round(percentile(ms, 0.99), 1),
                      round(max(ms, default=0.0), 1), sum(not a.ok for a in window),
                      mb(relay["rss"]), mb(relay["pss"]), mb(worker["rss"]), mb(worker["pss"]), mb(pg["pss"]),
                      mb(pg["anon"]), depth.get("outbound", 0), depth.get("outbox", 0),
                      depth.get("outbound_dlq", 0) + depth.get("inbound_dlq", 0),
                      round(os.getloadavg()[0], 2))  # fmt: skip

    async def sampler(self, load: Load, started: float) -> None:
        async with await psycopg.AsyncConnection.connect(self.pg.url("bench"), autocommit=True) as conn:
            since, tick = 0, 1
            while tick * self.args.interval <= self.args.duration + 1e-6:
                await asyncio.sleep(max(0.0, started + tick * self.args.interval - time.monotonic()))
                upto = len(load.answers)
                sample = await self.sample(conn, load, round(tick * self.args.interval), since)
                self.samples.append(sample)
                print(json.dumps(asdict(sample)), file=sys.stderr, flush=True)
                since, tick = upto, tick + 1

    async def consume_outbox(self, stopping: asyncio.Event) -> None:
        """The business's consumer: reads the domain events and acknowledges them, so that the
        outbox's depth shows whether the system keeps up rather than that nobody reads it."""
        async with await psycopg.AsyncConnection.connect(self.pg.url("bench"), autocommit=True) as conn:
            while not stopping.is_set():
                read = await conn.execute("SELECT msg_id FROM whatsapp_handler.outbox_read(1000, 60)")
                rows = await read.fetchall()
                if rows:
                    await conn.execute("SELECT whatsapp_handler.outbox_ack(%s)", ([r[0] for r in rows],))
                else:
                    await asyncio.sleep(0.5)

    async def run(self) -> Load:
        load = Load(lambda: self.port, self.args.rate)
        stopping = asyncio.Event()
        consumer = asyncio.create_task(self.consume_outbox(stopping))
        async with client_session() as session:
            started = time.monotonic()
            sampler = asyncio.create_task(self.sampler(load, started))
            await load.run(self.args.duration, sender(self.args.new_every), session)
            await sampler
        stopping.set()
        await consumer
        return load


COLUMNS = ["t", "answered", "p50_ms", "p99_ms", "max_ms", "errors", "relay_rss_mb", "relay_pss_mb", "worker_rss_mb",
           "worker_pss_mb", "pg_pss_mb", "pg_anon_mb", "outbound", "outbox", "dead_letters", "load1"]  # fmt: skip


def table(samples: list[Sample]) -> str:
    rows = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    rows += ["| " + " | ".join(str(getattr(s, c)) for c in COLUMNS) + " |" for s in samples]
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=600)
    parser.add_argument("--interval", type=float, default=10)
    parser.add_argument("--rate", type=float, default=200, help="webhooks per second")
    parser.add_argument("--new-every", type=int, default=20, help="one webhook in N is a first contact")
    parser.add_argument("--workers", type=int, default=1, help="granian worker processes")
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="wh-soak-"))
    soak = Soak(home, args)
    try:
        soak.start()
        load = uvloop.run(soak.run())
    finally:
        if hasattr(soak, "pg"):
            soak.stop()
        shutil.rmtree(home, ignore_errors=True)
    verdicts = [growth(soak.samples, s, args.duration) for s in SERIES]
    sent = len(load.webhooks)
    acknowledged = sum(w.acknowledged for w in load.webhooks)
    print(table(soak.samples))
    for v in verdicts:
        print(f"{v['series']}: {v['verdict']} (second minute {v['second_minute_mb']} MB, last minute "
              f"{v['last_minute_mb']} MB, slope {v['slope_mb_per_min']} MB/min over the second half)")  # fmt: skip
    summary = {"rate": args.rate, "duration": args.duration, "interval": args.interval, "webhooks": sent,
               "acknowledged": acknowledged, "samples": len(soak.samples), "load_average": os.getloadavg(),
               "verdict": "growing" if any(v["verdict"] == "growing" for v in verdicts) else "bounded",
               "growth": verdicts}  # fmt: skip
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
