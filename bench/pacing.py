"""Pacing benchmark (issue 14): four `whatsapp-handler worker` processes empty a queue of 100
messages to one person and 5,000 to others (one each) on one Meta channel, against the provider
double, which records when each send arrived. Reports, against the pacing settings of the run,
the largest number of sends the channel got in one second (clock seconds, and any second) and,
per person, the smallest gap between two sends and between sends a burst apart. Run by hand;
results go to bench/RESULTS.md.

    .venv/bin/python bench/pacing.py [--others 5000] [--one 100] [--per-second 80] [--pair-interval 1]

The pair interval of a run defaults to 1 s (WhatsApp's is about 6 s: 100 messages to one person
would take ten minutes); the channel's cap is the default, 80 a second.

    .venv/bin/python bench/pacing.py --claim-cost 1d74312 [--after dc42b80] [--messages 10000] [--rounds 4]

measures the claim's own cost instead: bench/worker_revisions.py's rounds (claim 100, settle the
batch, one connection, no HTTP) on this checkout and on an earlier revision, alternating, with
pacing set so wide that it never holds a message (the buckets are still taken).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import itertools
import json
import shutil
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import psycopg

from app.cluster import LocalCluster
from kit import durable, services
from kit.durable import PHONE_NUMBER_ID, add_login, alternating, durable_cluster, fill_outbound, load_known_users
from kit.provider_double import deliveries

HERE = Path(__file__).resolve().parent
WORKERS = 4

# The person's 100 messages: replies on the first conversation after the others', in order.
_FILL_ONE = """
WITH c AS (SELECT id, user_id, channel_id FROM whatsapp_handler.conversations ORDER BY id OFFSET %(offset)s LIMIT 1),
m AS (
    INSERT INTO whatsapp_handler.messages (id, created_at, channel_id, user_id, conversation_id, direction,
                                           message_type, body, status)
    OVERRIDING SYSTEM VALUE
    SELECT nextval('whatsapp_handler.messages_id_seq'), now(), channel_id, user_id, id, 'outbound', 'text',
           'Update ' || n, 'queued'
    FROM c, generate_series(1, %(n)s) n
    RETURNING id, created_at, channel_id, user_id, body
)
INSERT INTO pgmq.q_outbound (vt, message, headers)
SELECT clock_timestamp(),
       jsonb_build_object('kind', 'text', 'message_id', m.id, 'message_created_at', m.created_at,
                          'channel_id', m.channel_id, 'user_id', m.user_id, 'to', u.phone, 'body', m.body),
       jsonb_build_object('x-pgmq-group', 'user:' || m.user_id)
FROM m JOIN whatsapp_handler.users u ON u.id = m.user_id ORDER BY m.id
"""


ONE_PHONE = """SELECT u.phone FROM whatsapp_handler.conversations c JOIN whatsapp_handler.users u ON u.id = c.user_id
ORDER BY c.id OFFSET %s LIMIT 1"""


def most_in_a_second(times: list[float]) -> tuple[int, int]:
    """(the most in one clock second, the most in any window of one second)."""
    clock = defaultdict(int)
    for t in times:
        clock[int(t)] += 1
    times = sorted(times)
    best, j = 0, 0
    for i, t in enumerate(times):
        while t - times[j] >= 1.0:
            j += 1
        best = max(best, i - j + 1)
    return max(clock.values(), default=0), best


def configure(conn: psycopg.Connection, **values: object) -> None:
    for key, value in values.items():
        conn.execute("UPDATE whatsapp_handler.settings SET value = %s::jsonb WHERE key = %s",
                     (json.dumps(value), f"pacing.{key}"))  # fmt: skip


def pacing_run(args: argparse.Namespace) -> dict:
    home = Path(tempfile.mkdtemp(prefix="wh-pacing-bench-"))
    pg = durable_cluster(home)
    procs = []
    try:
        load_known_users(pg)
        worker_url = add_login(pg, "bench_worker", "bench-worker-password", "whatsapp_handler_worker")
        double, port = services.start_double(home / "double.log", control=True)
        procs.append(double)
        with psycopg.connect(pg.url("bench"), autocommit=True) as conn:
            settings = {"channel.per_second": args.per_second, "channel.burst": args.burst,
                        "pair.interval": f"{args.pair_interval} seconds", "pair.burst": args.pair_burst}  # fmt: skip
            configure(conn, **settings)
            fill_outbound(conn, args.others)
            conn.execute(_FILL_ONE, {"offset": args.others, "n": args.one})
            one = conn.execute(ONE_PHONE, (args.others,)).fetchone()[0]
            total = args.others + args.one
            channel = services.sending_channel(PHONE_NUMBER_ID, "+15550001111", port)
            started = time.time()
            for n in range(WORKERS):
                procs.append(services.start_worker(worker_url, [channel], args.concurrency, home / f"worker{n}.log"))
            while conn.execute("SELECT count(*) FROM pgmq.q_outbound").fetchone()[0]:
                time.sleep(0.5)
            elapsed = time.time() - started
            held = conn.execute("SELECT held_channel, held_pair, throttled FROM whatsapp_handler.worker_pacing()"
                                ).fetchone()  # fmt: skip
            dead = conn.execute("SELECT count(*) FROM pgmq.q_outbound_dlq").fetchone()[0]
        sent = deliveries(port)
        by_person = defaultdict(list)
        for d in sent:
            by_person[d["to"]].append(d["at"])
        clock_max, window_max = most_in_a_second([d["at"] for d in sent])
        gaps, burst_spans = [], []
        for times in by_person.values():
            times.sort()
            gaps += [b - a for a, b in itertools.pairwise(times)]
            burst_spans += [b - a for a, b in zip(times, times[args.pair_burst :], strict=False)]
        one_times = sorted(by_person[one.lstrip("+")])
        return {
            "settings": {"per_second": args.per_second, "burst": args.burst, "pair_interval_s": args.pair_interval,
                         "pair_burst": args.pair_burst},
            "workers": WORKERS, "concurrency": args.concurrency, "messages": total, "delivered": len(sent),
            "delivered_twice": len(sent) - len({d["key"] for d in sent}), "dead_letters": dead,
            "seconds": round(elapsed, 1), "messages_per_s": round(total / elapsed, 1),
            "channel_most_in_a_clock_second": clock_max, "channel_most_in_any_second": window_max,
            "one_person_delivered": len(one_times),
            "one_person_seconds": round(one_times[-1] - one_times[0], 1) if one_times else None,
            "smallest_gap_to_a_person_s": round(min(gaps), 3) if gaps else None,
            "smallest_span_of_burst_plus_one_s": round(min(burst_spans), 3) if burst_spans else None,
            "held_by_channel": held[0], "held_by_pair": held[1], "throttled": held[2],
        }  # fmt: skip
    finally:
        for proc in procs:
            services.stop(proc)
        pg.stop("immediate")
        shutil.rmtree(home, ignore_errors=True)


@contextlib.contextmanager
def _clusters(before: str, after: str | None) -> Iterator[dict[str, LocalCluster]]:
    """kit.durable.revision_clusters, with "after" a git revision too when given: this checkout's
    working tree may hold others' unfinished changes."""
    if after is None:
        with durable.revision_clusters(before, "wh-pacing-cost-") as clusters:
            yield clusters
        return
    homes = [Path(tempfile.mkdtemp(prefix="wh-pacing-cost-")) for _ in range(4)]
    clusters: dict[str, LocalCluster] = {}
    try:
        for name, revision, tree, home in (("before", before, *homes[:2]), ("after", after, *homes[2:])):
            print(f"deploying {name} ({revision})", file=sys.stderr, flush=True)
            clusters[name] = durable_cluster(home, durable.revision_tree(revision, tree))
            load_known_users(clusters[name])
        yield clusters
    finally:
        for pg in clusters.values():
            pg.stop("immediate")
        for home in homes:
            shutil.rmtree(home, ignore_errors=True)


def claim_cost(args: argparse.Namespace) -> None:
    spec = importlib.util.spec_from_file_location("worker_revisions", HERE / "worker_revisions.py")
    revisions = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(revisions)
    with _clusters(args.claim_cost, args.after) as clusters:
        with psycopg.connect(clusters["after"].url("bench"), autocommit=True) as conn:
            configure(conn, **{"channel.per_second": 100000, "channel.burst": 1000, "pair.interval": "0 seconds"})
        rates: dict[str, list[float]] = {"before": [], "after": []}
        claims: dict[str, list[float]] = {"before": [], "after": []}
        for round_, name in alternating(args.rounds):
            rate, claiming, settling = revisions._round(clusters[name], args.messages)
            rates[name].append(rate)
            claims[name].append(claiming)
            print(f"round {round_ + 1}/{args.rounds} {name:6} {rate:6.0f} msg/s "
                  f"(claiming {claiming:.2f} s, settling {settling:.2f} s)", flush=True)  # fmt: skip
        before, after = (statistics.median(rates[n]) for n in ("before", "after"))
        claim_before, claim_after = (statistics.median(claims[n]) for n in ("before", "after"))
        print(f"worker SQL: before {before:.0f}/s, after {after:.0f}/s, ratio after/before {after / before:.2f}; "
              f"time claiming after/before {claim_after / claim_before:.2f}")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--others", type=int, default=5000, help="people with one message each")
    parser.add_argument("--one", type=int, default=100, help="messages to the one person")
    parser.add_argument("--per-second", type=int, default=80)
    parser.add_argument("--burst", type=int, default=5)
    parser.add_argument("--pair-interval", type=float, default=1.0, help="seconds (WhatsApp: about 6)")
    parser.add_argument("--pair-burst", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=32, help="sends under way per worker")
    parser.add_argument("--claim-cost", metavar="REVISION", help="measure the claim's cost against REVISION instead")
    parser.add_argument("--after", metavar="REVISION", help="--claim-cost: this revision, not the working tree")
    parser.add_argument("--messages", type=int, default=10_000, help="--claim-cost: messages per round")
    parser.add_argument("--rounds", type=int, default=4, help="--claim-cost: rounds")
    args = parser.parse_args()
    if args.claim_cost:
        claim_cost(args)
    else:
        print(json.dumps(pacing_run(args), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
