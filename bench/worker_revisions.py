"""The worker's SQL (worker_claim and worker_sent_batch, no HTTP) of this checkout against an
earlier revision, in one run: each plan on its own durable cluster with the 100,000 known
users, rounds alternating between the two. Each round queues one reply per user and settles
them all as the worker does under load (claims of 100, one settling batch per claim), from
one connection. Reports messages/s per round and the ratio of the medians (this checkout /
the revision), with the time spent claiming and settling.

    .venv/bin/python bench/worker_revisions.py --before 46ddcf3 --messages 10000 --rounds 4

It isolates the database's share of bench/worker_bench.py, whose figure also holds the
worker's Python and the provider double."""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import psycopg

from app.cluster import LocalCluster
from kit.durable import alternating, fill_outbound, revision_clusters

CLAIM = "SELECT msg_id FROM whatsapp_handler.worker_claim(100, 60)"
SETTLE = "SELECT whatsapp_handler.worker_sent_batch(%s, %s)"


def _round(pg: LocalCluster, messages: int) -> tuple[float, float, float]:
    """(messages/s, seconds claiming, seconds settling) for one queue full."""
    with psycopg.connect(pg.url("bench"), autocommit=True) as conn:
        conn.execute("TRUNCATE pgmq.q_outbound, pgmq.a_outbound")
        conn.execute("DELETE FROM whatsapp_handler.messages WHERE direction = 'outbound'")
        fill_outbound(conn, messages)
        conn.execute("CHECKPOINT")
        claiming = settling = 0.0
        started = time.perf_counter()
        while True:
            t0 = time.perf_counter()
            ids = [row[0] for row in conn.execute(CLAIM)]
            t1 = time.perf_counter()
            claiming += t1 - t0
            if not ids:
                break
            conn.execute(SETTLE, (ids, [f"wamid.{i}" for i in ids]))
            settling += time.perf_counter() - t1
        return messages / (time.perf_counter() - started), claiming, settling


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=True, help="the git revision to compare with")
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    with revision_clusters(args.before, "wh-worker-revisions-") as clusters:
        rates: dict[str, list[float]] = {"before": [], "after": []}
        for round_, name in alternating(args.rounds):
            rate, claiming, settling = _round(clusters[name], args.messages)
            rates[name].append(rate)
            print(f"round {round_ + 1}/{args.rounds} {name:6} {rate:6.0f} msg/s "
                  f"(claiming {claiming:.2f} s, settling {settling:.2f} s)", flush=True)  # fmt: skip
        before, after = (statistics.median(rates[n]) for n in ("before", "after"))
        print(f"worker SQL: before {before:.0f}/s, after {after:.0f}/s, ratio after/before {after / before:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
