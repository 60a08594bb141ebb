"""Analytics benchmark (issue 5): a year of data (10,000,000 messages, 100,000 users) made
with generate_series on a durable throwaway PostgreSQL, then every view of schema analytics
and every example query of sql/analytics/ timed as an analyst. Run by hand; the figures
go to bench/RESULTS.md.

    .venv/bin/python bench/analytics_bench.py [--messages 10000000] [--users 100000] [--runs 5]

Each query is run --runs times after one warm-up run, as an analyst login of all channels
and as one scoped to one channel; the table shows the median and the worst, client clock,
from sending the query to holding every row in libpq (what psql's \\timing reports). A last
column gives the median time to turn all the rows into Python objects as well (psycopg's
fetchall), which for a large result is mostly the client's cost, not the database's.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import psycopg
from psycopg import pq

from kit.durable import BENCH, durable_cluster

VIEWS = ("channels", "users", "funnel_daily", "onboarded_daily", "otp_daily", "messages_daily",
         "delivery_latency_daily", "active_users", "dead_letters", "refresh_status")  # fmt: skip
PASSWORD = "bench-analyst-password"  # noqa: S105 - a throwaway cluster's, made and deleted by this run

# One statement per table; the year ends now. Users write on channel 1 + id % 3, one in ten
# also on the next channel; messages spread evenly over the year, half inbound.
LOAD = [
    (
        "partitions",
        """
    SELECT whatsapp_handler.create_partition(t, m, m + interval '1 month')
    FROM unnest(ARRAY['whatsapp_handler.messages', 'whatsapp_handler.message_status_events']::regclass[]) t,
         generate_series(date_trunc('month', now() - interval '13 months'), date_trunc('month', now()),
                         interval '1 month') m
    WHERE NOT EXISTS (SELECT FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = t
                      AND pg_get_expr(c.relpartbound, c.oid) LIKE '%%' || to_char(m, 'YYYY-MM-DD') || '%%')""",
    ),
    (
        "users",
        """
    INSERT INTO whatsapp_handler.users (phone, created_at, terms_accepted_at, terms_version, verified_at, onboarded_at,
                                        last_active_at)
    SELECT (ARRAY['+44', '+351', '+1', '+49', '+55'])[1 + i %% 5] || lpad(i::text, 9, '0'), t,
           CASE WHEN i %% 10 < 8 THEN t + interval '5 minutes' END, CASE WHEN i %% 10 < 8 THEN 'v1' END,
           CASE WHEN i %% 10 < 6 THEN t + interval '10 minutes' END,
           CASE WHEN i %% 10 < 6 THEN t + interval '10 minutes' END, t + interval '30 days'
    FROM generate_series(1, %(users)s) i,
         LATERAL (SELECT now() - interval '365 days' + (i::float8 / %(users)s) * interval '365 days' AS t) x""",
    ),
    (
        "conversations",
        """
    INSERT INTO whatsapp_handler.conversations (user_id, channel_id, state, created_at)
    SELECT u.id, 1 + (u.id + k) %% 3, 'active', u.created_at
    FROM whatsapp_handler.users u, generate_series(0, 1) k WHERE k = 0 OR u.id %% 10 = 0""",
    ),
    (
        "otp_challenges",
        """
    INSERT INTO whatsapp_handler.otp_challenges (user_id, channel_id, status, failed_attempts, created_at, expires_at,
                                                 resolved_at)
    SELECT u.id, 1 + u.id %% 3, s.status::whatsapp_handler.otp_status, s.failed, u.created_at + interval '6 minutes',
           u.created_at + interval '16 minutes', u.created_at + interval '7 minutes'
    FROM whatsapp_handler.users u,
         LATERAL (SELECT CASE WHEN u.id %% 10 < 6 THEN 'verified' WHEN u.id %% 10 = 6 THEN 'locked'
                              WHEN u.id %% 10 = 7 THEN 'expired' ELSE 'superseded' END AS status,
                         CASE WHEN u.id %% 10 = 6 THEN 5 ELSE u.id %% 3 END AS failed) s""",
    ),
    (
        "messages",
        """
    INSERT INTO whatsapp_handler.messages (created_at, channel_id, user_id, direction, provider_message_id,
                                       message_type,
                                           body, status, status_at)
    SELECT t, 1 + u %% 3, u,
           CASE WHEN i %% 2 = 0 THEN 'inbound' ELSE 'outbound' END::whatsapp_handler.message_direction,
           'wamid.' || i,
           (ARRAY['text', 'text', 'text', 'text', 'image', 'interactive', 'template', 'audio'])[1 + i %% 8],
           'message body ' || i,
           CASE WHEN i %% 2 = 0 THEN 'received' ELSE 'read' END::whatsapp_handler.message_status, t
    FROM generate_series(1::bigint, %(messages)s) i,
         LATERAL (SELECT 1 + (i * 7919) %% %(users)s AS u,
                         now() - interval '365 days' + (i::float8 / %(messages)s) * interval '365 days' AS t) x""",
    ),
    (
        "message_status_events",
        """
    INSERT INTO whatsapp_handler.message_status_events (received_at, channel_id, provider_message_id, status,
                                                    occurred_at)
    SELECT m.t + s.after + interval '1 second', 1 + (i * 7919 %% %(users)s + 1) %% 3, 'wamid.' || i,
           s.status::whatsapp_handler.message_status, m.t + s.after
    FROM generate_series(1::bigint, %(messages)s, 10) i,
         LATERAL (SELECT now() - interval '365 days' + (i::float8 / %(messages)s) * interval '365 days' AS t) m,
         LATERAL (VALUES ('sent', interval '0'), ('delivered', make_interval(secs => 1 + i %% 37)),
                         ('read', make_interval(secs => 60 + i %% 600))) s(status, after)
    WHERE s.status = 'sent' OR (s.status = 'delivered' AND i %% 100 < 95) OR (s.status = 'read' AND i %% 100 < 60)""",
    ),
    (
        "dead_letters",
        """
    SELECT count(*) FROM generate_series(1, 1000) i,
        LATERAL pgmq.send('outbound_dlq', jsonb_build_object('reason', 'rejected',
            'message', jsonb_build_object('channel_id', 1 + i %% 3, 'to', '+44' || i, 'body', 'x')))""",
    ),
]


def received(conn: psycopg.Connection, sql: str) -> int:
    """Runs sql and waits for every row in libpq's result, building no Python object."""
    result = conn.pgconn.exec_(sql.encode())
    if result.status != pq.ExecStatus.TUPLES_OK:
        raise RuntimeError(result.get_error_message())
    return result.ntuples


def fetched(conn: psycopg.Connection, sql: str) -> int:
    return len(conn.execute(sql).fetchall())


def timed(conn: psycopg.Connection, sql: str, runs: int, run) -> tuple[int, float, float]:
    """Rows, median and worst ms of runs runs after a warm-up."""
    n = run(conn, sql)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        run(conn, sql)
        times.append((time.perf_counter() - t0) * 1000)
    return n, statistics.median(times), max(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=10_000_000)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="wh-analytics-bench-"))
    pg = durable_cluster(home)
    try:
        url = pg.url("bench")
        with psycopg.connect(url, autocommit=True) as conn:
            # The refreshes are timed by hand here: pg_cron's run every 10 minutes would queue behind them.
            conn.execute("UPDATE whatsapp_handler.jobs SET enabled = false WHERE name = 'analytics_refresh'")
            for name, _ref, _phone in (("Support", "1000", "+15550001111"), ("Sales", "2000", "+15550002222"),
                                       ("Billing", "3000", "+15550003333")):  # fmt: skip
                conn.execute("SELECT whatsapp_handler.add_channel('meta', %s, %s, %s)", (_ref, _phone, name))
            for name, sql in LOAD:
                t0 = time.perf_counter()
                conn.execute(sql, {"messages": args.messages, "users": args.users})
                print(f"load {name}: {time.perf_counter() - t0:.1f} s", flush=True)
            t0 = time.perf_counter()
            conn.execute("VACUUM ANALYZE")
            print(f"VACUUM ANALYZE: {time.perf_counter() - t0:.1f} s", flush=True)
            t0 = time.perf_counter()
            conn.execute("SELECT whatsapp_handler.job_analytics_refresh('-infinity')")
            full = time.perf_counter() - t0
            t0 = time.perf_counter()
            conn.execute("SELECT whatsapp_handler.job_analytics_refresh()")
            incremental = time.perf_counter() - t0
            conn.execute("VACUUM ANALYZE")
            sizes = conn.execute(
                "SELECT (SELECT count(*) FROM whatsapp_handler.messages),"
                " (SELECT count(*) FROM whatsapp_handler.users),"
                " (SELECT count(*) FROM whatsapp_handler.message_status_events),"
                " pg_size_pretty(pg_database_size('bench'))"
            ).fetchone()
            for login, scope in (("bench_analyst_all", "NULL, true"), ("bench_analyst_one", "ARRAY[1]")):
                conn.execute(f"CREATE ROLE {login} LOGIN PASSWORD '{PASSWORD}'")
                conn.execute(f"SELECT whatsapp_handler.add_analyst('{login}', {scope})")
        print(f"\nrows: {sizes[0]:,} messages, {sizes[1]:,} users, {sizes[2]:,} statuses; database {sizes[3]}")
        print(
            f"job_analytics_refresh: full (first run) {full:.1f} s, default (last 3 days) {incremental * 1000:.0f} ms\n"
        )

        queries = [(f"view {v}", f"SELECT * FROM analytics.{v}") for v in VIEWS]
        queries += [
            (f"sql/analytics/{p.name}", p.read_text())
            for p in sorted((BENCH.parent / "sql" / "analytics").glob("*.sql"))
        ]
        print("| query | rows (all) | all channels: median / max ms | one channel: median / max ms"
              " | all channels, into Python: median ms |")  # fmt: skip
        print("| --- | ---: | ---: | ---: | ---: |")
        conns = {login: psycopg.connect(pg.url("bench", user=login, password=PASSWORD), autocommit=True)
                 for login in ("bench_analyst_all", "bench_analyst_one")}  # fmt: skip
        try:
            for name, sql in queries:
                (n, med, worst), (_, med1, worst1) = (timed(conn, sql, args.runs, received) for conn in conns.values())
                _, py, _ = timed(conns["bench_analyst_all"], sql, args.runs, fetched)
                cells = f"{n:,} | {med:.1f} / {worst:.1f} | {med1:.1f} / {worst1:.1f} | {py:.1f}"
                print(f"| {name} | {cells} |", flush=True)
        finally:
            for conn in conns.values():
                conn.close()
    finally:
        pg.stop("immediate")
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
