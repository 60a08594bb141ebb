"""Vacuum benchmark (issue 16): ingestion and delivery for several minutes while an analyst's
transaction stays open until the analyst guard ends it, once with PostgreSQL's autovacuum defaults
on every table and once with the plan's per-table settings (queue/autovacuum, core/autovacuum),
each phase on its own durable cluster (fsync and synchronous_commit on) with the known users.
Run by hand; results go to bench/RESULTS.md.

    .venv/bin/python bench/vacuum_bench.py [--duration 180] [--phases defaults,tuned]
        [--analyst-at 10 | --no-analyst] [--analyst-max 120] [--ingest-threads 2] [--sample-every 5]
        [--backlog 0] [--worker-rate 0] [--channel-pace 100000] [--out FILE] [--revision REV]

Load, from threads of psycopg connections as the database's superuser (the SQL the relay, the
worker and a consumer call, without their HTTP): `--ingest-threads` call ingest_meta with one text
from a known user each; one sender calls send_messages with 20 template messages a call; one
worker claims up to 100 outbound messages (worker_claim) and settles them sent (worker_sent_batch);
one consumer reads and acknowledges the outbox 100 at a time. The channel's pacing cap is lifted.
`--analyst-at` seconds into each phase an analyst login opens a REPEATABLE READ transaction, reads a
view and stays idle in it, having lifted its own idle timeout (as any login may); the analyst guard
(pg_cron, every minute) ends it once it is older than `--analyst-max` seconds (setting
analyst.max_transaction). `--no-analyst` leaves it out. Autovacuum runs as the cluster is shipped
(autovacuum_naptime 1 min).

`--backlog N` is the queue after a provider outage: N outbound text messages are queued before the
load starts (spread over the known users in turns, one per user a turn, so that each user's line
holds N / 100,000; then VACUUM ANALYZE, as a quiet queue would be), and the same worker drains them
at its own rate while the sender keeps queueing: flat out, or `--worker-rate` messages a second at
most (a worker held by its provider's latency; pacing stays lifted). `--channel-pace` is the channel's pacing cap
(pacing.channel.per_second, burst a hundredth of it; default lifted), the rate a worker gets in
the field.

Every `--sample-every` seconds it records, per table: dead and live tuples (pg_stat_user_tables;
a partitioned table as the sum of its partitions), size with indexes, autovacuum count, whether an
autovacuum of it is running (pg_stat_progress_vacuum); the messages ingested, sent and consumed
since the last sample, the backlog left (N + queued - sent) and the worker's claims' latency
(worker_claim, mean and 95th percentile). Prints the samples, a summary per phase
and the ratios tuned/defaults; `--out` writes everything as JSON. `--duration 5 --phases defaults`
is the smoke run.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import psycopg

from app.settings import PROJECT_DIR
from kit.durable import add_login, durable_cluster, fill_outbound, load_known_users, revision_tree, set_channel_pace

# The tables watched: the queues and their archives, and the project's tables that a message updates
# or deletes (the rest only grow). A partitioned table is summed over its partitions.
QUEUE_TABLES = ("pgmq.q_outbound", "pgmq.q_outbox", "pgmq.a_outbound", "pgmq.a_outbox")
SAMPLE = """
WITH t AS (
    SELECT coalesce(i.inhparent, s.relid) AS rel, s.*
    FROM pg_stat_user_tables s LEFT JOIN pg_inherits i ON i.inhrelid = s.relid
    WHERE s.schemaname IN ('pgmq', 'whatsapp_handler')
)
SELECT t.rel::regclass::text AS name, sum(n_dead_tup)::bigint AS dead, sum(n_live_tup)::bigint AS live,
       sum(pg_total_relation_size(t.relid))::bigint AS bytes, sum(autovacuum_count)::bigint AS autovacuums,
       sum(n_tup_ins)::bigint AS ins, sum(n_tup_upd)::bigint AS upd, sum(n_tup_del)::bigint AS del,
       sum(n_tup_hot_upd)::bigint AS hot
FROM t GROUP BY t.rel
"""
VACUUMING = (
    "SELECT coalesce(i.inhparent, p.relid)::regclass::text FROM pg_stat_progress_vacuum p "
    "LEFT JOIN pg_inherits i ON i.inhrelid = p.relid WHERE p.datname = current_database()"
)
# Every table's own autovacuum storage parameters back to the server's (the defaults phase).
RESET = """
SELECT format('ALTER TABLE %s RESET (%s)', c.oid::regclass,
              string_agg(split_part(o, '=', 1), ', '))
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace, unnest(c.reloptions) o
WHERE n.nspname IN ('pgmq', 'whatsapp_handler') AND o LIKE 'autovacuum%%'
GROUP BY c.oid
"""
TEMPLATE = {"name": "bench_update", "language": {"code": "en"},
            "components": [{"type": "body", "parameters": [{"type": "text", "text": "42"}]}]}  # fmt: skip
META = ('{"object":"whatsapp_business_account","entry":[{"id":"102290129340398","changes":[{"field":"messages",'
        '"value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550001111",'
        '"phone_number_id":"1234567890"},"contacts":[{"profile":{"name":"Ana"},"wa_id":"%(wa)s"}],'
        '"messages":[{"from":"%(wa)s","id":"wamid.%(id)s","timestamp":"1700000000","type":"text",'
        '"text":{"body":"hello"}}]}}]}]}')  # fmt: skip


class Counter:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.counts = {"ingested": 0, "sent": 0, "consumed": 0, "queued": 0, "errors": 0}
        self.claims: list[float] = []  # seconds each worker_claim took, since the last sample
        self.began = time.monotonic()

    def claimed(self, seconds: float) -> None:
        with self.lock:
            self.claims.append(seconds)

    def take_claims(self) -> list[float]:
        with self.lock:
            claims, self.claims = self.claims, []
            return claims

    def add(self, key: str, n: int) -> None:
        with self.lock:
            self.counts[key] += n

    def snapshot(self) -> dict[str, int]:
        with self.lock:
            return dict(self.counts)


def prepare(url: str, defaults: bool, analyst_max: int, channel_pace: int) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT whatsapp_handler.template_upsert(1, 'bench_update', 'en', 'utility', 'approved',"
                     " '[{\"type\": \"BODY\", \"text\": \"Your order {{1}} has shipped\"}]')")  # fmt: skip
        conn.execute("INSERT INTO whatsapp_handler.api_keys (name, key_hash, channel_ids, scopes)"
                     " VALUES ('bench', sha256('bench-key'::bytea), '{1}', '{send,read}')")  # fmt: skip
        set_channel_pace(conn, channel_pace, max(1, channel_pace // 100))  # refills at per_second - burst + 1
        conn.execute("UPDATE whatsapp_handler.settings SET value = to_jsonb(%s::text)"
                     " WHERE key = 'analyst.max_transaction'", (f"{analyst_max} seconds",))  # fmt: skip
        if defaults:
            for (statement,) in conn.execute(RESET).fetchall():
                conn.execute(statement)
        left = conn.execute(RESET).fetchall()
        print(f"  tables with autovacuum settings: {len(left)}", file=sys.stderr, flush=True)


def ingester(url: str, stop: threading.Event, counter: Counter) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        while not stop.is_set():
            wa = str(random.randint(447700000000, 447700099999))  # noqa: S311 (a sample, not a secret)
            try:
                conn.execute("SELECT whatsapp_handler.ingest_meta(%s::jsonb, 'bench')",
                             (META % {"wa": wa, "id": uuid.uuid4()},), prepare=True)  # fmt: skip
                counter.add("ingested", 1)
            except psycopg.Error:
                counter.add("errors", 1)


def sender(url: str, stop: threading.Event, counter: Counter, per_second: float) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        while not stop.is_set():
            started = time.monotonic()
            batch = [{"to": f"+{random.randint(447700000000, 447700099999)}", "type": "template",  # noqa: S311
                      "template": TEMPLATE, "idempotency_key": str(uuid.uuid4())} for _ in range(20)]  # fmt: skip
            try:
                conn.execute("SELECT count(message_id) FROM whatsapp_handler.send_messages(sha256('bench-key'::bytea),"
                             " 1, %s::jsonb)", (json.dumps(batch),), prepare=True)  # fmt: skip
                counter.add("queued", len(batch))
            except psycopg.Error:
                counter.add("errors", 1)
            stop.wait(max(0.0, 20 / per_second - (time.monotonic() - started)))


def worker(url: str, stop: threading.Event, counter: Counter, per_second: float) -> None:
    """Claims 100 and settles them, flat out; at most per_second messages a second when given."""
    with psycopg.connect(url, autocommit=True) as conn:
        while not stop.is_set():
            if per_second:
                stop.wait(max(0.0, counter.snapshot()["sent"] / per_second - (time.monotonic() - counter.began)))
            started = time.monotonic()
            ids = [
                r[0] for r in conn.execute("SELECT msg_id FROM whatsapp_handler.worker_claim(100, 60)", prepare=True)
            ]
            counter.claimed(time.monotonic() - started)
            if not ids:
                stop.wait(0.05)
                continue
            conn.execute("SELECT whatsapp_handler.worker_sent_batch(%s, %s)",
                         (ids, [f"wamid.bench.{i}" for i in ids]), prepare=True)  # fmt: skip
            counter.add("sent", len(ids))


def consumer(url: str, stop: threading.Event, counter: Counter) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        while not stop.is_set():
            ids = [r[0] for r in conn.execute("SELECT msg_id FROM whatsapp_handler.outbox_read(100, 30)", prepare=True)]
            if not ids:
                stop.wait(0.05)
                continue
            conn.execute("SELECT whatsapp_handler.outbox_ack(%s)", (ids,), prepare=True)
            counter.add("consumed", len(ids))


def analyst(url: str, at: float, stop: threading.Event, state: dict) -> None:
    """Opens a snapshot at `at` seconds and holds it until the guard ends the session."""
    if stop.wait(at):
        return
    conn = psycopg.connect(url)
    try:
        conn.execute("SET idle_in_transaction_session_timeout = 0")
        conn.execute("SET statement_timeout = 0")
        conn.commit()
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        conn.execute("SELECT count(*) FROM analytics.messages_daily").fetchone()
        state["opened"] = time.monotonic()
        while not stop.wait(2):
            try:
                # Same snapshot (REPEATABLE READ): the transaction holds vacuum back until the guard ends it.
                conn.execute("SELECT 1").fetchone()
            except psycopg.Error:
                state["ended"] = time.monotonic()
                return
    finally:
        conn.close()


def sample(conn: psycopg.Connection) -> dict[str, dict[str, int]]:
    rows = conn.execute(SAMPLE).fetchall()
    vacuuming = {name for (name,) in conn.execute(VACUUMING).fetchall()}
    return {name: dict(zip(("dead", "live", "bytes", "autovacuums", "ins", "upd", "del", "hot"), rest, strict=True))
            | {"vacuuming": name in vacuuming} for name, *rest in rows}  # fmt: skip


def percentile(values: list[float], q: float) -> float:
    return sorted(values)[min(len(values) - 1, int(q * len(values)))] if values else 0.0


def run_phase(name: str, args: argparse.Namespace) -> dict:
    home = Path(tempfile.mkdtemp(prefix=f"vacuum-bench-{name}-"))
    pg = None
    try:
        print(f"phase {name}: deploying", file=sys.stderr, flush=True)
        pg = durable_cluster(home, args.project)
        load_known_users(pg)
        url = pg.url("bench")
        prepare(url, name == "defaults", args.analyst_max, args.channel_pace)
        analyst_url = add_login(pg, "bench_analyst", "bench-analyst-password", "whatsapp_handler_analyst")
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("SELECT whatsapp_handler.add_analyst('bench_analyst', '{1}')")
            if args.backlog:
                began = time.monotonic()
                fill_outbound(conn, args.backlog)
                print(f"  backlog of {args.backlog} queued in {time.monotonic() - began:.0f} s", file=sys.stderr,
                      flush=True)  # fmt: skip
            conn.execute("VACUUM ANALYZE")
        stop, counter, state = threading.Event(), Counter(), {}
        threads = [threading.Thread(target=ingester, args=(url, stop, counter)) for _ in range(args.ingest_threads)]
        threads += [threading.Thread(target=sender, args=(url, stop, counter, args.send_rate)),
                    threading.Thread(target=worker, args=(url, stop, counter, args.worker_rate)),
                    threading.Thread(target=consumer, args=(url, stop, counter))]  # fmt: skip
        if not args.no_analyst:
            threads.append(threading.Thread(target=analyst, args=(analyst_url, args.analyst_at, stop, state)))
        samples = []
        with psycopg.connect(url, autocommit=True) as watch:
            start = counter.began = time.monotonic()
            for t in threads:
                t.start()
            last_counts, last_t = counter.snapshot(), start
            try:
                while (now := time.monotonic()) - start < args.duration:
                    time.sleep(min(args.sample_every, max(0.0, args.duration - (now - start))))
                    now = time.monotonic()
                    counts, claims, tables = counter.snapshot(), counter.take_claims(), sample(watch)
                    s = {"t": round(now - start, 1),
                         "analyst_open": "opened" in state and "ended" not in state,
                         "rates": {k: round((counts[k] - last_counts[k]) / (now - last_t), 1) for k in counts},
                         "backlog": args.backlog + counts["queued"] - counts["sent"],
                         "claims": len(claims), "claim_ms_sum": round(1000 * sum(claims), 1),
                         "claim_ms_p95": round(1000 * percentile(claims, 0.95), 1),
                         "tables": tables}  # fmt: skip
                    samples.append(s)
                    q = "  ".join(f"{t.split('.')[1]} {tables.get(t, {}).get('dead', 0)}d"
                                  f"{'*' if tables.get(t, {}).get('vacuuming') else ''}/"
                                  f"{tables.get(t, {}).get('bytes', 0) // 1024}k" for t in QUEUE_TABLES)  # fmt: skip
                    print(
                        f"  {name} t={s['t']:6.1f} analyst={'open' if s['analyst_open'] else '-':4} "
                        f"ingest/s {s['rates']['ingested']:6.1f} sent/s {s['rates']['sent']:6.1f} "
                        f"backlog {s['backlog']:7} claim ms {s['claim_ms_sum'] / max(1, s['claims']):6.1f} "
                        f"p95 {s['claim_ms_p95']:6.1f}  {q}",
                        flush=True,
                    )
                    last_counts, last_t = counts, now
            finally:
                stop.set()
                for t in threads:
                    t.join()
        return {"phase": name, "samples": samples, "counts": counter.snapshot(),
                "analyst": {k: round(v - start, 1) for k, v in state.items()}}  # fmt: skip
    finally:
        if pg is not None:
            pg.stop("immediate")
        shutil.rmtree(home, ignore_errors=True)


def summary(phase: dict) -> dict:
    samples = phase["samples"]
    claims = sum(s["claims"] for s in samples)
    out: dict = {"ingest_per_s": statistics.mean(s["rates"]["ingested"] for s in samples),
                 "sent_per_s": statistics.mean(s["rates"]["sent"] for s in samples),
                 "claim_ms_mean": sum(s["claim_ms_sum"] for s in samples) / max(1, claims),
                 "claim_ms_p95_median": statistics.median(s["claim_ms_p95"] for s in samples),
                 "backlog_end": samples[-1]["backlog"]}  # fmt: skip
    opened, ended = phase["analyst"].get("opened"), phase["analyst"].get("ended")
    during = [s for s in samples if s["analyst_open"]]
    after = [s for s in samples if ended is not None and s["t"] > ended]
    if during:
        out["ingest_per_s_analyst_open"] = statistics.mean(s["rates"]["ingested"] for s in during)
    if after:
        out["ingest_per_s_after_guard"] = statistics.mean(s["rates"]["ingested"] for s in after)
    out["analyst_open_s"] = (ended - opened) if opened is not None and ended is not None else None
    tables = {}
    last = samples[-1]["tables"]
    for name in sorted(last):
        dead = [s["tables"].get(name, {}).get("dead", 0) for s in samples]
        tail = [s["tables"].get(name, {}).get("dead", 0) for s in after] or dead[-1:]
        churn = last[name]["upd"] + last[name]["del"]
        if churn == 0 and name not in QUEUE_TABLES:
            continue
        tables[name] = {"dead_peak": max(dead), "dead_mean": round(statistics.mean(dead)),
                        "dead_mean_after_guard": round(statistics.mean(tail)),
                        "vacuuming_share": round(statistics.mean(bool(s["tables"].get(name, {}).get("vacuuming"))
                                                                 for s in samples), 2),
                        "dead_end": dead[-1], "live_end": last[name]["live"],
                        "bytes_peak": max(s["tables"].get(name, {}).get("bytes", 0) for s in samples),
                        "bytes_end": last[name]["bytes"], "autovacuums": last[name]["autovacuums"],
                        "ins": last[name]["ins"], "upd": last[name]["upd"], "del": last[name]["del"],
                        "hot": last[name]["hot"]}  # fmt: skip
    out["tables"] = tables
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=180, help="seconds of load per phase (default 180)")
    parser.add_argument("--phases", default="defaults,tuned", help="defaults, tuned or both (default both)")
    parser.add_argument("--analyst-at", type=float, default=10, help="seconds before the analyst opens (default 10)")
    parser.add_argument("--analyst-max", type=int, default=120, help="analyst.max_transaction in seconds (default 120)")
    parser.add_argument("--no-analyst", action="store_true", help="no analyst's transaction held")
    parser.add_argument("--backlog", type=int, default=0, help="outbound messages queued before the load (default 0)")
    parser.add_argument(
        "--channel-pace",
        type=int,
        default=100000,
        help="pacing.channel.per_second, the worker's cap (default 100000: lifted)",
    )
    parser.add_argument(
        "--worker-rate",
        type=float,
        default=0,
        help="messages the worker sends a second at most (default 0: as fast as it goes)",
    )
    parser.add_argument("--ingest-threads", type=int, default=2)
    parser.add_argument("--send-rate", type=float, default=200, help="business messages sent a second (default 200)")
    parser.add_argument("--sample-every", type=float, default=5)
    parser.add_argument("--out", type=Path, help="write the samples and summaries as JSON")
    parser.add_argument("--revision", help="deploy the plan of this git revision (default: this checkout's tree)")
    args = parser.parse_args()
    args.project = PROJECT_DIR
    if args.revision:
        args.project = revision_tree(args.revision, Path(tempfile.mkdtemp(prefix="vacuum-bench-tree-")))
    phases = [run_phase(name, args) for name in args.phases.split(",")]
    result = {"args": {k: str(v) for k, v in vars(args).items()}, "phases": phases,
              "summaries": {p["phase"]: summary(p) for p in phases}}  # fmt: skip
    for name, s in result["summaries"].items():
        print(
            f"\n== {name}: ingest {s['ingest_per_s']:.1f}/s (analyst open "
            f"{s.get('ingest_per_s_analyst_open', 0):.1f}, after the guard {s.get('ingest_per_s_after_guard', 0):.1f}),"
            f" sent {s['sent_per_s']:.1f}/s, analyst held {s['analyst_open_s']} s, claim {s['claim_ms_mean']:.1f} ms"
            f" (p95 a sample, median {s['claim_ms_p95_median']:.1f}), backlog at the end {s['backlog_end']}"
        )
        print(
            f"{'table':45} {'dead peak':>10} {'dead mean':>10} {'dead after':>10} {'dead end':>9} {'live end':>9} "
            f"{'kB peak':>8} {'kB end':>8} {'avac':>5} {'vac%':>5} {'ins':>8} {'upd':>8} {'del':>8} {'hot':>8}"
        )
        for table, t in s["tables"].items():
            print(
                f"{table:45} {t['dead_peak']:>10} {t['dead_mean']:>10} {t['dead_mean_after_guard']:>10} "
                f"{t['dead_end']:>9} "
                f"{t['live_end']:>9} {t['bytes_peak'] // 1024:>8} {t['bytes_end'] // 1024:>8} {t['autovacuums']:>5} "
                f"{round(100 * t['vacuuming_share']):>5} {t['ins']:>8} {t['upd']:>8} {t['del']:>8} {t['hot']:>8}"
            )
    if {"defaults", "tuned"} <= result["summaries"].keys():
        d, t = result["summaries"]["defaults"], result["summaries"]["tuned"]
        print("\n== tuned / defaults")
        for key in (
            "ingest_per_s",
            "ingest_per_s_analyst_open",
            "ingest_per_s_after_guard",
            "sent_per_s",
            "claim_ms_mean",
            "claim_ms_p95_median",
        ):
            if d.get(key) and t.get(key):
                print(f"{key:30} {t[key] / d[key]:.2f}")
        for table in QUEUE_TABLES + tuple(k for k in t["tables"] if k not in QUEUE_TABLES):
            a, b = d["tables"].get(table), t["tables"].get(table)
            if a and b:
                ratio = {
                    k: (f"{b[k] / a[k]:.2f}" if a[k] else "-")
                    for k in ("dead_peak", "dead_mean", "dead_mean_after_guard", "bytes_end", "autovacuums")
                }
                print(f"{table:45} " + "  ".join(f"{k} {v}" for k, v in ratio.items()))
    if args.out:
        args.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
