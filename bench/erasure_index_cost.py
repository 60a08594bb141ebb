"""What erasure's phones index (issue 11) costs ingestion: the SQL-only ingest rates of
bench/relay_bench.py with whatsapp_handler.webhook_events_phones_idx present, then
dropped, alternating on one durable cluster, and the index's size per 100,000 webhooks.
Run by hand; results go to bench/RESULTS.md.

    .venv/bin/python bench/erasure_index_cost.py [--rounds 3] [--duration 10]

Needs pgbench (Debian package postgresql-client-15).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
from pathlib import Path

import psycopg

from kit.durable import durable_cluster, load_known_users, pgbench

INDEX = "whatsapp_handler.webhook_events_phones_idx"
# (name, script, clients, webhooks per transaction): relay_bench.py's two SQL-only loads.
WORKLOADS = [("ingest_meta", "ingest_meta.pgbench", 8, 1), ("ingest_batch16", "ingest_batch16.pgbench", 4, 16)]


def index_size(conn: psycopg.Connection) -> dict[str, int]:
    """Bytes of the index over all partitions, bytes of the table's heap, and its rows."""
    return {
        "index_bytes": conn.execute("SELECT sum(pg_relation_size(relid))::bigint FROM pg_partition_tree(%s)",
                                    (INDEX,)).fetchone()[0],
        "heap_bytes": conn.execute("SELECT sum(pg_relation_size(relid))::bigint "
                                   "FROM pg_partition_tree('whatsapp_handler.webhook_events')").fetchone()[0],
        "rows": conn.execute("SELECT count(*) FROM whatsapp_handler.webhook_events").fetchone()[0],
    }  # fmt: skip


def per_100k(size: dict[str, int]) -> dict[str, float]:
    return {
        "rows": size["rows"],
        "index_mib_per_100k": round(size["index_bytes"] / size["rows"] * 100_000 / 2**20, 2),
        "heap_mib_per_100k": round(size["heap_bytes"] / size["rows"] * 100_000 / 2**20, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=10, help="seconds per pgbench run")
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="wh-bench-"))
    pg = durable_cluster(home)
    try:
        load_known_users(pg)
        conn = psycopg.connect(pg.url("bench"), autocommit=True)
        # Recreated from its own definition; checked below to be valid on every partition again.
        create = conn.execute("SELECT pg_get_indexdef(%s::regclass)", (INDEX,)).fetchone()[0]
        partitions = conn.execute("SELECT count(*) FROM pg_partition_tree(%s)", (INDEX,)).fetchone()[0]
        print(f"index: {create}", flush=True)
        for name, script, clients, _ in WORKLOADS:  # warm-up, not counted
            pgbench(pg, 5, script, clients)
            print(f"warm-up {name} done", flush=True)
        rates: dict[str, dict[str, list[float]]] = {w[0]: {"with": [], "without": []} for w in WORKLOADS}
        sizes = {}
        for round_ in range(1, args.rounds + 1):
            for state in ("with", "without"):
                for name, script, clients, per_call in WORKLOADS:
                    conn.execute("CHECKPOINT")  # every run starts after one, its full-page writes included
                    rate = per_call * pgbench(pg, args.duration, script, clients)
                    rates[name][state].append(rate)
                    print(f"round {round_} {state:7} index  {name:14} {clients} clients: {rate:8.0f} webhooks/s",
                          flush=True)  # fmt: skip
                if state == "with":
                    sizes.setdefault("grown_by_inserts", per_100k(index_size(conn)))
                    conn.execute(f"DROP INDEX {INDEX}")
            conn.execute(create)
            valid = conn.execute("SELECT bool_and(indisvalid), count(*) FROM pg_partition_tree(%s) "
                                 "JOIN pg_index ON indexrelid = relid", (INDEX,)).fetchone()  # fmt: skip
            assert valid == (True, partitions), f"recreated index: valid {valid[0]}, {valid[1]} of {partitions} parts"
            print(f"round {round_}: index recreated ({valid[1]} partitions, valid)", flush=True)
        sizes["rebuilt_at_end"] = per_100k(index_size(conn))
        summary = {
            name: {
                "with_median": round(statistics.median(r["with"])),
                "without_median": round(statistics.median(r["without"])),
                "ratio_with_to_without": round(statistics.median(r["with"]) / statistics.median(r["without"]), 3),
                "with": [round(x) for x in r["with"]],
                "without": [round(x) for x in r["without"]],
            }
            for name, r in rates.items()
        }
        print(json.dumps({"webhooks_per_s": summary, "index_size": sizes}, indent=2))
        conn.close()
    finally:
        pg.stop("immediate")
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
