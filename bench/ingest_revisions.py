"""Ingestion of this checkout against an earlier revision, in one run: each plan on its own
durable cluster with bench/known_users.sql's 100,000 users, pgbench rounds alternating
between the two, so that the machine's noise falls on both alike. Reports webhooks/s per
round and the ratio of the medians (this checkout / the revision).

    .venv/bin/python bench/ingest_revisions.py --before 46ddcf3 --rounds 3 --duration 10

The earlier revision's plan is taken with `git archive` and deployed from there by sqitch;
both clusters run this checkout's pgbench scripts (the SQL they call is the same API)."""

from __future__ import annotations

import argparse
import statistics
import sys

import psycopg

from app.cluster import LocalCluster
from kit.durable import alternating, pgbench, revision_clusters

# name, pgbench script, clients, webhooks per transaction
WORKLOADS = (("ingest_meta", "ingest_meta.pgbench", 8, 1), ("ingest_batch16", "ingest_batch16.pgbench", 4, 16))


def _rate(pg: LocalCluster, script: str, clients: int, per: int, seconds: int) -> float:
    with psycopg.connect(pg.url("bench"), autocommit=True) as conn:
        conn.execute("CHECKPOINT")
    return per * pgbench(pg, seconds, script, clients)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=True, help="the git revision to compare with")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=10, help="seconds per pgbench run")
    args = parser.parse_args()
    with revision_clusters(args.before, "wh-ingest-revisions-") as clusters:
        for pg in clusters.values():  # warm-up, not counted
            for _, script, clients, per in WORKLOADS:
                _rate(pg, script, clients, per, 3)
        rates: dict[str, dict[str, list[float]]] = {w[0]: {"before": [], "after": []} for w in WORKLOADS}
        for round_, name in alternating(args.rounds):
            for workload, script, clients, per in WORKLOADS:
                rate = _rate(clusters[name], script, clients, per, args.duration)
                rates[workload][name].append(rate)
                print(f"round {round_ + 1}/{args.rounds} {name:6} {workload:15} {rate:8.0f} webhooks/s", flush=True)
        for workload, by_tree in rates.items():
            before, after = (statistics.median(by_tree[n]) for n in ("before", "after"))
            print(f"{workload}: before {before:.0f}/s, after {after:.0f}/s, ratio after/before {after / before:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
