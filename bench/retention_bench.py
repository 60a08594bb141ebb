"""Retention benchmark (issue 4): raw webhooks past retention removed by dropping their
daily partitions (whatsapp_handler.job_partitions) against a DELETE of the same rows,
on a durable throwaway PostgreSQL (fsync, synchronous_commit and full_page_writes on).
Reports the time and the WAL each one writes; the DELETE also needs a VACUUM before its
space can be reused, so that is measured too. Run by hand; results go to bench/RESULTS.md.

    .venv/bin/python bench/retention_bench.py [--days 20] [--rows-per-day 150000]

Half of the days are past the 30-day retention: the same rows go both ways. The DELETE
runs first; the rows are then loaded again and the partitions dropped.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import psycopg

from app.cluster import LocalCluster
from kit.durable import durable_cluster

# A Meta text webhook of realistic size (~700 bytes as jsonb), different per row.
LOAD = """
INSERT INTO whatsapp_handler.webhook_events (provider, payload, outcome, received_at)
SELECT 'meta',
       jsonb_build_object('object', 'whatsapp_business_account', 'entry', jsonb_build_array(jsonb_build_object(
           'id', '102290129340398', 'changes', jsonb_build_array(jsonb_build_object('field', 'messages',
           'value', jsonb_build_object(
               'messaging_product', 'whatsapp',
               'metadata', jsonb_build_object('display_phone_number', '15550001111', 'phone_number_id', '1234567890'),
               'contacts', jsonb_build_array(jsonb_build_object('profile', jsonb_build_object('name', 'Ana'),
                                                                'wa_id', (447700000000 + i %% 100000)::text)),
               'messages', jsonb_build_array(jsonb_build_object(
                   'from', (447700000000 + i %% 100000)::text, 'id', 'wamid.' || md5(d::text || i::text),
                   'timestamp', extract(epoch FROM d)::bigint::text, 'type', 'text',
                   'text', jsonb_build_object('body', 'hello, this is message ' || i || ' of the day'))))))))),
       'processed',
       d + (i * interval '86399 seconds' / %(rows)s)
FROM generate_series(%(first)s::timestamptz, %(last)s::timestamptz, interval '1 day') d,
     generate_series(1, %(rows)s) i
"""


def start_database(home: Path) -> LocalCluster:
    return durable_cluster(home, max_wal_size="8GB", checkpoint_timeout="30min")


def measured(conn: psycopg.Connection, sql: str) -> tuple[float, int]:
    """Seconds and WAL bytes of one statement, after a checkpoint (so each starts alike)."""
    conn.execute("CHECKPOINT")
    before = conn.execute("SELECT pg_current_wal_insert_lsn()").fetchone()[0]
    start = time.perf_counter()
    conn.execute(sql)
    seconds = time.perf_counter() - start
    wal = conn.execute("SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), %s)::bigint", (before,)).fetchone()[0]
    return seconds, wal


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=int, default=20, help="days loaded; the older half is past retention")
    parser.add_argument("--rows-per-day", type=int, default=150_000)
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="wh-retention-bench-"))
    pg = start_database(home)
    try:
        with psycopg.connect(pg.url("bench"), autocommit=True) as conn:
            # No job may run during the measurements: scheduling is data.
            conn.execute("UPDATE whatsapp_handler.jobs SET enabled = false")
            # Days today-(30+days/2) .. today-(31-days/2): the older half ends before now() - 30 days.
            today = conn.execute("SELECT date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'").fetchone()[0]
            first = conn.execute("SELECT %s::timestamptz - make_interval(days => %s)", (today, 30 + args.days // 2))
            first = first.fetchone()[0]
            cutoff = conn.execute("SELECT %s::timestamptz - interval '30 days'", (today,)).fetchone()[0]
            last = conn.execute("SELECT %s::timestamptz + make_interval(days => %s)", (first, args.days - 1))
            last = last.fetchone()[0]
            conn.execute(
                "SELECT whatsapp_handler.create_partition('whatsapp_handler.webhook_events', d, d + interval '1 day') "
                "FROM generate_series(%s::timestamptz, %s::timestamptz, interval '1 day') d",
                (first, last),
            )

            t0 = time.perf_counter()
            conn.execute(LOAD, {"first": first, "last": last, "rows": args.rows_per_day})
            conn.execute("VACUUM ANALYZE whatsapp_handler.webhook_events")
            load_s = time.perf_counter() - t0
            total = conn.execute("SELECT count(*) FROM whatsapp_handler.webhook_events").fetchone()[0]
            size = conn.execute(
                "SELECT pg_size_pretty(sum(pg_total_relation_size(relid))) "
                "FROM pg_partition_tree('whatsapp_handler.webhook_events')"
            ).fetchone()[0]
            past = conn.execute(
                "SELECT count(*) FROM whatsapp_handler.webhook_events WHERE received_at < %s", (cutoff,)
            ).fetchone()[0]
            print(f"loaded {total:,} rows ({size}) in {load_s:.0f} s; {past:,} past retention", flush=True)

            delete_s, delete_wal = measured(
                conn, f"DELETE FROM whatsapp_handler.webhook_events WHERE received_at < '{cutoff.isoformat()}'"
            )
            vacuum_s, vacuum_wal = measured(conn, "VACUUM whatsapp_handler.webhook_events")
            left = conn.execute("SELECT count(*) FROM whatsapp_handler.webhook_events").fetchone()[0]
            assert left == total - past, (left, total, past)
            print(f"DELETE: {delete_s:.2f} s, {delete_wal:,} WAL bytes; VACUUM {vacuum_s:.2f} s, {vacuum_wal:,}")

            # The same rows again, into the same (now empty) partitions, then dropped.
            conn.execute(LOAD, {"first": first, "last": cutoff - timedelta(days=1), "rows": args.rows_per_day})
            conn.execute("VACUUM ANALYZE whatsapp_handler.webhook_events")
            again = conn.execute(
                "SELECT count(*) FROM whatsapp_handler.webhook_events WHERE received_at < %s", (cutoff,)
            ).fetchone()[0]
            assert again == past, (again, past)
            drop_s, drop_wal = measured(conn, "SELECT whatsapp_handler.job_partitions()")
            left = conn.execute("SELECT count(*) FROM whatsapp_handler.webhook_events").fetchone()[0]
            assert left == total - past, (left, total, past)
            print(f"DROP (job_partitions): {drop_s:.3f} s, {drop_wal:,} WAL bytes")

            print()
            print(f"| rows past retention | of rows ({size}) | way | time | WAL |")
            print("| ---: | ---: | --- | ---: | ---: |")
            print(f"| {past:,} | {total:,} | DELETE | {delete_s:.2f} s | {delete_wal / 2**20:,.1f} MiB |")
            print(f"| | | VACUUM after the DELETE | {vacuum_s:.2f} s | {vacuum_wal / 2**20:,.1f} MiB |")
            print(f"| | | DROP of partitions (job_partitions) | {drop_s:.3f} s | {drop_wal / 2**10:,.1f} KiB |")
            print()
            print(f"DELETE / DROP: time {delete_s / drop_s:,.0f}x, WAL {delete_wal / max(drop_wal, 1):,.0f}x;")
            print(f"DELETE + VACUUM / DROP: time {(delete_s + vacuum_s) / drop_s:,.0f}x, "
                  f"WAL {(delete_wal + vacuum_wal) / max(drop_wal, 1):,.0f}x")  # fmt: skip
    finally:
        pg.stop("immediate")
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
