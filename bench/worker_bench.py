"""Worker benchmark (issue 4; channels and pacing, issue 14): how fast `whatsapp-handler worker`
empties the outbound queue against the provider double over loopback, on a durable PostgreSQL
(fsync and synchronous_commit on). Run by hand; results go to bench/RESULTS.md.

    .venv/bin/python bench/worker_bench.py [--messages 40000] [--concurrency 128] [--workers 1]
        [--channels 1] [--per-second 100000] [--burst 1000] [--poll-interval 0.05] [--after REVISION]
        [--before REVISION [--rounds 2] [--before-per-second N] [--before-burst N]]

The queue is filled first (one text reply per user, so claims are never held back by a
user's earlier message), then the workers start and the clock runs until the queue is
empty; every message must end sent (archived) with its provider id recorded.

By default it measures the worker itself, as issue 4's figure did: one Meta channel, and its
pacing cap lifted (pacing.channel.per_second 100,000 and pacing.channel.burst 1,000, so that no
claim waits for a token yet every claim takes them); the pair pace stays as deployed, which
one message per person never meets. `--per-second 80 --burst 5` is the deployed cap. The
workers poll as kit.services starts them (WORKER_POLL_INTERVAL 0.05 s, the service's default
0.5 s: `--poll-interval`).
`--channels N` spreads the known users' conversations over N Meta channels, in turn, so that
the queue holds the N channels' messages interleaved (the cap is per channel). Besides
messages/s from the workers' start (`messages_per_s`), each round reports the rate from the
first claim to the last (`claimed_per_s`, without the workers' start-up), each channel's
(`per_channel_claimed_per_s`: lowest, median, highest) and the most claims of one channel in a
clock second and in any one-second window (claim times, pgmq's last_read_at, which the pacing
buckets hold), and the heads the claims held back for the channel's or the person's turn.
With pacing in the plan, it also counts the claims that took messages (all of one claim carry
the same last_read_at), messages per claim and the median time between two claims.

`--before REVISION` compares with an earlier revision in the same run: each side on its own
durable cluster with the known users, rounds alternating, the revision's own worker (its app/
from a `git archive`, first on PYTHONPATH) against the same double; a plan from before pacing
(v1.0.0, 4af853d) sends unpaced. Prints each round and the ratio of the medians. `--after
REVISION` runs that revision instead of this checkout (whose tree may hold others' unfinished
changes). `--before-per-second` and `--before-burst` give the before side a cap of its own: with
`--before` and `--after` the same revision, a paced run against the cap lifted.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg

from app.cluster import LocalCluster
from app.settings import PROJECT_DIR
from kit import services
from kit.durable import (
    PHONE_NUMBER_ID,
    add_login,
    alternating,
    durable_cluster,
    empty_outbound,
    fill_outbound,
    load_known_users,
    revision_setups,
    revision_tree,
    set_channel_pace,
)

WORKER_PASSWORD = "bench-worker-password"  # noqa: S105 - a throwaway cluster's, made and deleted by this run
# No progress for this long ends the run: a worker died, or something holds the messages.
STALL_SECONDS = 60

# The conversations in turn over the channels (ordered by id), as fill_outbound takes them.
_SPREAD = """
UPDATE whatsapp_handler.conversations c SET channel_id = ch.id
FROM (SELECT id, row_number() OVER (ORDER BY id) - 1 AS k FROM whatsapp_handler.conversations) o,
     (SELECT id, row_number() OVER (ORDER BY id) - 1 AS k FROM whatsapp_handler.channels) ch
WHERE o.id = c.id AND ch.k = o.k %% %(n)s
"""

# Per channel, from the archive of the round: messages, seconds from first claim to last, the
# most claims in any one-second window and in one clock second.
# A plan with pacing stamps every message of one claim with the same time (the tokens'; before
# pacing, each row's own clock): the number of claims that took messages, and the median time
# from one to the next.
_CLAIMS = """
SELECT count(*), percentile_cont(0.5) WITHIN GROUP (ORDER BY gap)
FROM (SELECT extract(epoch FROM at - lag(at) OVER (ORDER BY at))::float8 AS gap
      FROM (SELECT DISTINCT last_read_at AS at FROM pgmq.a_outbound) d) g
"""

_PACE = """
WITH t AS (
    SELECT (message ->> 'channel_id')::bigint AS channel_id, coalesce(last_read_at, archived_at) AS at
    FROM pgmq.a_outbound
), w AS (
    SELECT channel_id, at, count(*) OVER (PARTITION BY channel_id ORDER BY at
                                          RANGE BETWEEN CURRENT ROW AND interval '999999 microseconds' FOLLOWING) AS n
    FROM t
), clock AS (
    SELECT channel_id, max(n) AS n FROM (SELECT channel_id, count(*) AS n FROM t
                                         GROUP BY channel_id, date_trunc('second', at)) s GROUP BY channel_id
)
SELECT w.channel_id, count(*), extract(epoch FROM max(w.at) - min(w.at))::float8, max(w.n), min(clock.n)
FROM w JOIN clock USING (channel_id) GROUP BY w.channel_id ORDER BY w.channel_id
"""


def channel_refs(count: int) -> list[tuple[str, str]]:
    """(Meta phone number id, phone) of the bench's channels: the first is load_known_users'."""
    return [(str(int(PHONE_NUMBER_ID) + k), f"+1555000{1111 + k}") for k in range(count)]


def prepare(pg: LocalCluster, channels: int, per_second: int, burst: int) -> tuple[str, bool]:
    """The worker login's URL, and whether the plan paces; the channels added and the known
    users' conversations spread over them."""
    with psycopg.connect(pg.url("bench"), autocommit=True) as conn:
        for ref, phone in channel_refs(channels)[1:]:
            conn.execute("SELECT whatsapp_handler.add_channel('meta', %s, %s, %s)", (ref, phone, f"Bench {ref}"))
        if channels > 1:
            conn.execute(_SPREAD, {"n": channels})
            conn.execute("VACUUM ANALYZE whatsapp_handler.conversations")
        paced = set_channel_pace(conn, per_second, burst)
    return add_login(pg, "bench_worker", WORKER_PASSWORD, "whatsapp_handler_worker"), paced


def start_worker(worker_url: str, channels: list[dict], args: argparse.Namespace, log: Path) -> subprocess.Popen:
    """kit.services.start_worker, with the run's poll interval: the pause after a claim that got fewer
    messages than it asked for, which is every claim of a channel held by its pace."""
    if args.poll_interval is None:
        return services.start_worker(worker_url, channels, args.concurrency, log)
    env = services.service_env(worker_database_url=worker_url, channels=channels,
                               worker_concurrency=str(args.concurrency), worker_batch=str(min(args.concurrency, 500)),
                               worker_poll_interval=str(args.poll_interval), log_level="WARNING")  # fmt: skip
    return subprocess.Popen([str(services.BIN / "whatsapp-handler"), "worker"], env=env, stdout=log.open("ab"),
                            stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip


@contextlib.contextmanager
def python_of(tree: Path | None) -> Iterator[None]:
    """The processes started inside import the service from tree (a git archive) instead of this checkout."""
    if tree is None:
        yield
        return
    saved = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = str(tree)
    try:
        yield
    finally:
        if saved is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = saved


def held(conn: psycopg.Connection) -> tuple[int, int] | None:
    """Heads held back so far by the channels' caps and by the pair pace (None: a plan without pacing)."""
    if not conn.execute("SELECT to_regclass('whatsapp_handler.pacing_channels') IS NOT NULL").fetchone()[0]:
        return None
    return conn.execute("SELECT coalesce(sum(held_channel), 0)::bigint, coalesce(sum(held_pair), 0)::bigint "
                        "FROM whatsapp_handler.pacing_channels").fetchone()  # fmt: skip


def run_round(pg: LocalCluster, tree: Path | None, worker_url: str, channels: list[dict],
              args: argparse.Namespace, log_prefix: Path) -> dict:  # fmt: skip
    procs: list[subprocess.Popen] = []
    try:
        with psycopg.connect(pg.url("bench"), autocommit=True) as conn:
            empty_outbound(conn)
            fill_outbound(conn, args.messages)
            conn.execute("CHECKPOINT")
            held_before = held(conn)
            started = time.perf_counter()
            with python_of(tree):
                for n in range(args.workers):
                    log = log_prefix.parent / f"{log_prefix.name}-worker{n}.log"
                    procs.append(start_worker(worker_url, channels, args, log))
            left, last_change, last_left = args.messages, time.monotonic(), args.messages
            while left:
                time.sleep(0.2)
                left = conn.execute("SELECT count(*) FROM pgmq.q_outbound").fetchone()[0]
                if left != last_left:
                    last_change, last_left = time.monotonic(), left
                elif time.monotonic() - last_change > STALL_SECONDS:
                    raise SystemExit(
                        f"{left} messages still queued, none settled for {STALL_SECONDS} s: "
                        f"see {log_prefix}-worker*.log"
                    )
            elapsed = time.perf_counter() - started
            held_after = held(conn)
            claims = conn.execute(_CLAIMS).fetchone() if held_after is not None else None
            sent = conn.execute(
                "SELECT count(*) FROM whatsapp_handler.messages WHERE direction = 'outbound' "
                "AND provider_message_id IS NOT NULL"
            ).fetchone()[0]
            dead = conn.execute("SELECT count(*) FROM pgmq.q_outbound_dlq").fetchone()[0]
            pace = conn.execute(_PACE).fetchall()
            first_to_last = conn.execute(
                "SELECT extract(epoch FROM max(coalesce(last_read_at, archived_at)) "
                "- min(coalesce(last_read_at, archived_at)))::float8 FROM pgmq.a_outbound"
            ).fetchone()[0]
    finally:
        for proc in procs:
            services.stop(proc)
    claimed = sum(n for _, n, _, _, _ in pace)
    rates = [(n - 1) / span for _, n, span, _, _ in pace if span > 0]
    result = {
        "messages": args.messages, "channels": len(channels), "workers": args.workers,
        "concurrency": args.concurrency, "seconds": round(elapsed, 2), "messages_per_s": round(args.messages / elapsed),
        "claimed_per_s": round((claimed - 1) / first_to_last) if first_to_last else None,
        "per_channel_claimed_per_s": [round(min(rates), 1), round(statistics.median(rates), 1), round(max(rates), 1)]
        if rates else None,
        "channel_most_in_any_second": max((w for _, _, _, w, _ in pace), default=0),
        "channel_most_in_a_clock_second": max((c for _, _, _, _, c in pace), default=0),
        "sent_with_provider_id": sent, "dead_letters": dead,
    }  # fmt: skip
    if held_before is not None and held_after is not None:
        result["held_by_channel"] = held_after[0] - held_before[0]
        result["held_by_pair"] = held_after[1] - held_before[1]
        result["claims"] = claims[0]
        result["messages_per_claim"] = round(args.messages / claims[0], 1)
        result["median_ms_between_claims"] = round(claims[1] * 1000, 1) if claims[1] is not None else None
    if sent != args.messages or dead:
        result["incomplete"] = True
    return result


@contextlib.contextmanager
def single_setup(after: str | None) -> Iterator[dict[str, tuple[LocalCluster, Path | None]]]:
    """{"after": (cluster, tree)}: this checkout's plan, or revision after's, with the known users."""
    homes = [Path(tempfile.mkdtemp(prefix="wh-worker-bench-")) for _ in range(2)]
    pg = None
    try:
        tree = revision_tree(after, homes[1]) if after else None
        pg = durable_cluster(homes[0], tree or PROJECT_DIR)
        load_known_users(pg)
        yield {"after": (pg, tree)}
    finally:
        if pg is not None:
            pg.stop("immediate")
        for home in homes:
            shutil.rmtree(home, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=40_000)
    parser.add_argument("--concurrency", type=int, default=128, help="sends under way per worker")
    parser.add_argument("--workers", type=int, default=1, help="worker processes")
    parser.add_argument("--channels", type=int, default=1, help="Meta channels the messages are spread over")
    parser.add_argument("--per-second", type=int, default=100_000, help="pacing.channel.per_second (80 deployed)")
    parser.add_argument("--burst", type=int, default=1_000, help="pacing.channel.burst (5 deployed)")
    parser.add_argument("--poll-interval", type=float, help="WORKER_POLL_INTERVAL (kit.services: 0.05, service: 0.5)")
    parser.add_argument("--before", metavar="REVISION", help="compare with this revision, rounds alternating")
    parser.add_argument("--after", metavar="REVISION", help="run this revision instead of this checkout")
    parser.add_argument("--before-per-second", type=int, help="--before's pacing.channel.per_second (as --per-second)")
    parser.add_argument("--before-burst", type=int, help="--before's pacing.channel.burst (as --burst)")
    parser.add_argument("--rounds", type=int, help="rounds per side (default 1, or 2 with --before)")
    args = parser.parse_args()
    if args.messages > 100_000:
        raise SystemExit("at most 100,000 messages: one per known user")
    paces = {"after": (args.per_second, args.burst),
             "before": (args.before_per_second or args.per_second, args.before_burst or args.burst)}  # fmt: skip
    if not 1 <= args.channels <= 1000 or not all(1 <= burst <= rate for rate, burst in paces.values()):
        raise SystemExit("1 to 1000 channels, and a burst from 1 to its per-second")
    rounds = args.rounds or (2 if args.before else 1)

    scratch = Path(tempfile.mkdtemp(prefix="wh-worker-bench-logs-"))
    double = None
    setups = revision_setups(args.before, "wh-worker-bench-", args.after) if args.before else single_setup(args.after)
    try:
        double, port = services.start_double(scratch / "double.log", control=False)
        channels = [services.sending_channel(ref, phone, port) for ref, phone in channel_refs(args.channels)]
        with setups as sides:
            logins = {name: prepare(pg, args.channels, *paces[name]) for name, (pg, _) in sides.items()}
            for name, (_, paced) in logins.items():
                pace = "{}/s, burst {}".format(*paces[name]) if paced else "none in its plan"
                print(f"{name}: {args.channels} channel(s), pacing {pace}", file=sys.stderr, flush=True)
            order = alternating(rounds) if args.before else ((n, "after") for n in range(rounds))
            results: dict[str, list[dict]] = {name: [] for name in sides}
            for round_, name in order:
                pg, tree = sides[name]
                result = run_round(pg, tree, logins[name][0], channels, args, scratch / f"{name}{round_}")
                results[name].append(result)
                print(json.dumps({"round": round_ + 1, "side": name, **result}), flush=True)
        medians = {name: statistics.median(r["messages_per_s"] for r in rs) for name, rs in results.items()}
        summary = {f"{name}_messages_per_s": round(m) for name, m in medians.items()}
        if args.before:
            summary["ratio_after_before"] = round(medians["after"] / medians["before"], 2)
        print(json.dumps(summary))
        shutil.rmtree(scratch, ignore_errors=True)  # the logs stay when a round failed
    finally:
        if double is not None:
            services.stop(double)


if __name__ == "__main__":
    main()
