"""The worker's SQL (worker_claim and worker_sent_batch, no HTTP) of this checkout against an
earlier revision, in one run: each plan on its own durable cluster with the 100,000 known
users, rounds alternating between the two. Each round queues one reply per user and settles
them all as the worker does under load (claims of 100, one settling batch per claim), from
one connection. Reports messages/s per round and the ratio of the medians (this checkout /
the revision), with the time spent claiming and settling.

    .venv/bin/python bench/worker_revisions.py --before 46ddcf3 [--after REVISION] [--messages 10000]
        [--rounds 4] [--functions] [--statements] [--after-plan-cache-mode force_generic_plan]

It isolates the database's share of bench/worker_bench.py, whose figure also holds the
worker's Python and the provider double. A plan with pacing (delivery/pacing) has its channel
cap lifted (pacing.channel.per_second 100,000, pacing.channel.burst 1,000: no claim is held by
it, every claim still takes the tokens) and the pair pace as deployed (one message per person
never meets it); a round starts with no pair bucket (kit.durable.empty_outbound), as a campaign
to people not written to in the last hour. A round fails unless every message was settled.
--after compares with that revision's plan instead of this checkout's (which may hold others'
unfinished changes); --functions turns track_functions on and prints, per side, each function's
calls and mean total and self time per call over all rounds (the claim's and the settle's parts).
--statements loads pg_stat_statements (track all, track_planning) and prints, per side, the
statements the functions ran, how many times each was executed and planned, and the mean time of
a plan and of an execution: a statement planned at every call is planned afresh each time.
--after-plan-cache-mode sets the after side's sessions' plan_cache_mode (a function's own SET
still wins): with --before and --after one revision, what planning costs its claims."""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import psycopg

from app.cluster import LocalCluster
from kit.durable import alternating, empty_outbound, fill_outbound, revision_clusters, set_channel_pace

CLAIM = "SELECT msg_id FROM whatsapp_handler.worker_claim(100, 60)"
SETTLE = "SELECT whatsapp_handler.worker_sent_batch(%s, %s)"
# The cap lifted: a claim of 100 never waits for a token (a burst below the claim's size would hold it).
LIFTED = (100_000, 1_000)
# The claim's and the settle's functions (not the cron jobs' that run meanwhile), µs per call.
FUNCTIONS = r"""SELECT funcname, calls, total_time / calls * 1000, self_time / calls * 1000
FROM pg_stat_user_functions WHERE schemaname = 'whatsapp_handler' AND calls > 0
AND funcname LIKE ANY (ARRAY['worker\_%', '\_claim\_%', '\_heads\_%', '\_pacing%', '\_setting%', '\_lock\_%',
                             '\_archive\_%', '\_delete\_%'])
ORDER BY total_time DESC"""
# The statements the functions run (pg_stat_statements, track all): how often each was planned.
STATEMENTS = r"""SELECT regexp_replace(left(query, 60), '\s+', ' ', 'g'), calls, plans, mean_plan_time * 1000,
       mean_exec_time * 1000
FROM pg_stat_statements WHERE NOT toplevel AND calls >= 50 ORDER BY total_exec_time + total_plan_time DESC LIMIT 14"""
STATEMENT_SETTINGS = {"shared_preload_libraries": "'pg_cron,pg_stat_statements'", "pg_stat_statements.track": "all",
                      "pg_stat_statements.track_planning": "on"}  # fmt: skip


def _round(pg: LocalCluster, messages: int, plan_cache_mode: str | None = None) -> tuple[float, float, float]:
    """(messages/s, seconds claiming, seconds settling) for one queue full."""
    with psycopg.connect(pg.url("bench"), autocommit=True) as conn:
        empty_outbound(conn)
        fill_outbound(conn, messages)
        conn.execute("CHECKPOINT")
        if plan_cache_mode:
            conn.execute("SELECT set_config('plan_cache_mode', %s, false)", (plan_cache_mode,))
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
        elapsed = time.perf_counter() - started
        left = conn.execute("SELECT count(*) FROM pgmq.q_outbound").fetchone()[0]
    if left:
        raise SystemExit(f"{left} of {messages} messages were never claimed: a claim came back empty early")
    return messages / elapsed, claiming, settling


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=True, help="the git revision to compare with")
    parser.add_argument("--after", help="a git revision to compare instead of this checkout")
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--after-plan-cache-mode", choices=("auto", "force_generic_plan", "force_custom_plan"),
                        help="the after side's sessions' plan_cache_mode")  # fmt: skip
    parser.add_argument("--statements", action="store_true", help="pg_stat_statements: each statement's plans")
    parser.add_argument("--functions", action="store_true", help="track_functions = all; print the functions' times")
    args = parser.parse_args()
    settings = ({"track_functions": "all"} if args.functions else {}) | (STATEMENT_SETTINGS if args.statements else {})
    with revision_clusters(args.before, "wh-worker-revisions-", args.after, **settings) as clusters:
        for name, pg in clusters.items():
            with psycopg.connect(pg.url("bench"), autocommit=True) as conn:
                paced = set_channel_pace(conn, *LIFTED)
                conn.execute("SELECT pg_stat_reset()")
                if args.statements:
                    conn.execute("CREATE EXTENSION pg_stat_statements")
            print(f"{name}: {'channel cap lifted' if paced else 'no pacing in its plan'}", flush=True)
        rates: dict[str, list[float]] = {"before": [], "after": []}
        for round_, name in alternating(args.rounds):
            mode = args.after_plan_cache_mode if name == "after" else None
            rate, claiming, settling = _round(clusters[name], args.messages, mode)
            rates[name].append(rate)
            print(f"round {round_ + 1}/{args.rounds} {name:6} {rate:6.0f} msg/s "
                  f"(claiming {claiming:.2f} s, settling {settling:.2f} s)", flush=True)  # fmt: skip
        before, after = (statistics.median(rates[n]) for n in ("before", "after"))
        print(f"worker SQL: before {before:.0f}/s, after {after:.0f}/s, ratio after/before {after / before:.2f}")
        if args.functions:
            for name, pg in clusters.items():
                with psycopg.connect(pg.url("bench"), autocommit=True) as conn:
                    print(f"{name}: function, calls, µs per call (total, self)")
                    for fn, calls, total, self_ in conn.execute(FUNCTIONS):
                        print(f"  {fn:28} {calls:8d} {total:8.3f} {self_:8.3f}")
        if args.statements:
            for name, pg in clusters.items():
                with psycopg.connect(pg.url("bench"), autocommit=True) as conn:
                    print(f"{name}: statement, calls, plans, µs per plan, µs per execution")
                    for query, calls, plans, plan_us, exec_us in conn.execute(STATEMENTS):
                        print(f"  {query:62} {calls:7d} {plans:7d} {plan_us:8.1f} {exec_us:8.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
