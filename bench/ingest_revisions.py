"""Ingestion of this checkout against an earlier revision, in one run: each plan on its own
durable cluster with bench/known_users.sql's 100,000 users, pgbench rounds alternating
between the two, so that the machine's noise falls on both alike. Reports webhooks/s per
round and the ratio of the medians (this checkout / the revision).

    .venv/bin/python bench/ingest_revisions.py --before 46ddcf3 --rounds 3 --duration 10

The earlier revision's plan is taken with `git archive` and deployed from there by sqitch;
both clusters run this checkout's pgbench scripts (the SQL they call is the same API)."""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

import psycopg

from app.cluster import LocalCluster
from app.settings import PROJECT_DIR
from kit.durable import durable_cluster, load_known_users, pgbench, revision_tree

# name, pgbench script, clients, webhooks per transaction
WORKLOADS = (("ingest_meta", "ingest_meta.pgbench", 8, 1), ("ingest_batch16", "ingest_batch16.pgbench", 4, 16))


def _cluster(home: Path, project: Path) -> LocalCluster:
    pg = durable_cluster(home, project)
    load_known_users(pg)
    return pg


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
    # Each cluster in a directory of its own, which LocalCluster hands to the postgres user.
    homes = [Path(tempfile.mkdtemp(prefix="wh-ingest-revisions-")) for _ in range(3)]
    clusters: dict[str, LocalCluster] = {}
    try:
        trees = {"before": revision_tree(args.before, homes[0]), "after": PROJECT_DIR}
        for (name, tree), home in zip(trees.items(), homes[1:], strict=True):
            print(f"deploying {name} ({tree})", file=sys.stderr, flush=True)
            clusters[name] = _cluster(home, tree)
        for pg in clusters.values():  # warm-up, not counted
            for _, script, clients, per in WORKLOADS:
                _rate(pg, script, clients, per, 3)
        rates: dict[str, dict[str, list[float]]] = {w[0]: {"before": [], "after": []} for w in WORKLOADS}
        for round_ in range(args.rounds):
            order = ("before", "after") if round_ % 2 == 0 else ("after", "before")
            for name in order:
                for workload, script, clients, per in WORKLOADS:
                    rate = _rate(clusters[name], script, clients, per, args.duration)
                    rates[workload][name].append(rate)
                    print(f"round {round_ + 1}/{args.rounds} {name:6} {workload:15} {rate:8.0f} webhooks/s", flush=True)
        for workload, by_tree in rates.items():
            before, after = (statistics.median(by_tree[n]) for n in ("before", "after"))
            print(f"{workload}: before {before:.0f}/s, after {after:.0f}/s, ratio after/before {after / before:.2f}")
    finally:
        for pg in clusters.values():
            pg.stop("immediate")
        for home in homes:
            shutil.rmtree(home, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
