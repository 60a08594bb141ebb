"""Worker benchmark (issue 4): how fast `whatsapp-handler worker` empties the outbound
queue against the provider double over loopback, on a durable PostgreSQL (fsync and
synchronous_commit on). Run by hand; results go to bench/RESULTS.md.

    .venv/bin/python bench/worker_bench.py [--messages 40000] [--concurrency 128] [--workers 1]

The queue is filled first (one text reply per user, so claims are never held back by a
user's earlier message), then the workers start and the clock runs until the queue is
empty; every message must end sent (archived) with its provider id recorded.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg

from app.cluster import LocalCluster
from kit import services
from kit.durable import PHONE_NUMBER_ID, add_login, durable_cluster, fill_outbound, load_known_users

BIN = Path(sys.executable).parent
WORKER_PASSWORD = "bench-worker-password"  # noqa: S105 - a throwaway cluster's, made and deleted by this run


def start_database(home: Path) -> tuple[LocalCluster, str]:
    pg = durable_cluster(home)
    load_known_users(pg)
    return pg, add_login(pg, "bench_worker", WORKER_PASSWORD, "whatsapp_handler_worker")


def start_worker(worker_url: str, double_port: int, concurrency: int, log: Path) -> subprocess.Popen:
    channel = services.sending_channel(PHONE_NUMBER_ID, "+15550001111", double_port)
    return services.start_worker(worker_url, [channel], concurrency, log)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=40_000)
    parser.add_argument("--concurrency", type=int, default=128, help="sends under way per worker")
    parser.add_argument("--workers", type=int, default=1, help="worker processes")
    args = parser.parse_args()
    if args.messages > 100_000:
        raise SystemExit("at most 100,000 messages: one per known user")

    home = Path(tempfile.mkdtemp(prefix="wh-worker-bench-"))
    pg, worker_url = start_database(home)
    procs: list[subprocess.Popen] = []
    try:
        double, port = services.start_double(home.parent / f"{home.name}-double.log", control=False)
        procs.append(double)
        with psycopg.connect(pg.url("bench"), autocommit=True) as conn:
            fill_outbound(conn, args.messages)
            started = time.perf_counter()
            for n in range(args.workers):
                log = home.parent / f"{home.name}-worker{n}.log"
                procs.append(start_worker(worker_url, port, args.concurrency, log))
            while conn.execute("SELECT count(*) FROM pgmq.q_outbound").fetchone()[0]:
                time.sleep(0.2)
            elapsed = time.perf_counter() - started
            sent = conn.execute(
                "SELECT count(*) FROM whatsapp_handler.messages WHERE direction = 'outbound' "
                "AND provider_message_id IS NOT NULL"
            ).fetchone()[0]
            dead = conn.execute("SELECT count(*) FROM pgmq.q_outbound_dlq").fetchone()[0]
        print(json.dumps({"messages": args.messages, "workers": args.workers, "concurrency": args.concurrency,
                          "seconds": round(elapsed, 2), "messages_per_s": round(args.messages / elapsed),
                          "sent_with_provider_id": sent, "dead_letters": dead}, indent=2))  # fmt: skip
    finally:
        for proc in procs:
            services.stop(proc)
        pg.stop("immediate")
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
