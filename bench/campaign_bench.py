"""Campaign benchmarks (issue 15), on a durable PostgreSQL with the 100,000 known users. Run by hand;
results go to bench/RESULTS.md.

    .venv/bin/python bench/campaign_bench.py upload [--rows 100000] [--rounds 2] [--duration 10] [--functions]

Uploading and planning a campaign of --rows recipients: a CSV (a few percent of duplicate phones,
invalid numbers, missing variables) read by app.recipients.from_csv and stored by one
campaign_upload call with skip_invalid; then "planning": start, and worker_campaigns called in a loop
(60 recipients a call, the most it takes) until every recipient is queued or skipped, with the
campaign at its fastest pace and campaigns.lookahead at its longest, so that pacing never holds the
loop. Some recipients opted out, so that the send rules' refusal path is in the figure too. Each as
rows a second and as a ratio to pgbench's single-row jsonb INSERT (bench/insert_jsonb.pgbench, 8
clients, and 1 client: planning is one stream, a campaign being dispatched by one call at a time)
measured in the same run, alternating; send_messages (100 a call, 1 client) is the same send rules'
batch path, for reference. --functions adds one upload and planning pass with track_functions =
'all' and prints where its time went (pg_stat_user_functions).

    .venv/bin/python bench/campaign_bench.py dispatch [--recipients 3000] [--per-second 50] [--workers 2]

Dispatch holding the campaign's own cap: --workers real `whatsapp-handler worker` processes (each
dispatches campaigns itself, every campaign_dispatch_interval) send a campaign against the provider
double, which records when each send arrived; reports the most sends in one clock second and in any
one-second window against per_second, and the time from the first send to the last against
recipients / per_second.

Needs pgbench (Debian package postgresql-client-15). --revision REV deploys that git revision's plan
instead of this checkout's (whose working tree may hold others' unfinished changes); the workers are
always this checkout's.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import psycopg
from psycopg.types.json import Jsonb

from app import recipients
from app.cluster import LocalCluster
from app.settings import PROJECT_DIR
from kit import durable, services
from kit.durable import PHONE_NUMBER_ID, add_login, durable_cluster, load_known_users, pgbench, set_channel_pace
from kit.provider_double import deliveries

TEMPLATE = "timetable_change"
LANGUAGE = "en_GB"
KNOWN_USERS = 100_000


def phone(n: int) -> str:
    """The phone of known user n (bench/known_users.sql)."""
    return f"+{447700000000 + n}"


def most_in_a_second(times: list[float]) -> tuple[int, int]:
    """(the most in one clock second, the most in any window of one second), as bench/pacing.py counts."""
    clock: dict[int, int] = {}
    for t in times:
        clock[int(t)] = clock.get(int(t), 0) + 1
    times = sorted(times)
    best, j = 0, 0
    for i, t in enumerate(times):
        while t - times[j] >= 1.0:
            j += 1
        best = max(best, i - j + 1)
    return max(clock.values(), default=0), best


def audience_csv(rows: int, duplicates: float, invalid: float, seed: int = 15) -> tuple[str, dict[str, int]]:
    """A CSV `phone,name,train` of `rows` lines: distinct known users, then `duplicates` of them
    again (other variables), `invalid` of them half not E.164 and half with a variable missing,
    shuffled. Returns the text and what campaign_upload should answer."""
    n_dup, n_bad = round(rows * duplicates), round(rows * invalid)
    n_good = rows - n_dup - n_bad
    if n_good > KNOWN_USERS:
        raise SystemExit(f"at most {KNOWN_USERS:,} distinct recipients: the known users")
    rng = random.Random(seed)  # noqa: S311 (a sample and an order, not a secret)
    good = [(phone(n), f"Passenger {n}", f"IC {n % 997}") for n in range(n_good)]
    lines = good + [(p, "Again", "IC 1") for p, _, _ in rng.sample(good, n_dup)]
    lines += [
        (f"0{7700000000 + n}", "Local", "IC 2") if n % 2 else (phone(n_good + n), "", "IC 3") for n in range(n_bad)
    ]
    rng.shuffle(lines)
    # The first of a phone's lines is its recipient; a later one is the duplicate.
    text = "phone,name,train\n" + "".join(f"{p},{a},{b}\n" for p, a, b in lines)
    return text, {"rows": rows, "accepted": n_good, "duplicates": n_dup, "invalid": n_bad}


@contextmanager
def cluster(revision: str | None, prefix: str) -> Iterator[tuple[LocalCluster, Path]]:
    """A durable cluster with the plan (of revision, or this checkout) and the known users, the
    campaign's template approved on the bench channel."""
    home = Path(tempfile.mkdtemp(prefix=prefix))
    project = PROJECT_DIR
    if revision:
        project = durable.revision_tree(revision, Path(tempfile.mkdtemp(prefix=prefix + "tree-")))
    pg = durable_cluster(home, project)
    try:
        load_known_users(pg)
        with psycopg.connect(pg.url("bench"), autocommit=True) as conn:
            body = Jsonb([{"type": "BODY", "text": "Hi {{1}}, train {{2}} moved"}])
            conn.execute("SELECT whatsapp_handler.template_upsert(1, %s, %s, 'utility', 'approved', %s)",
                         (TEMPLATE, LANGUAGE, body))  # fmt: skip
        yield pg, home
    finally:
        pg.stop("immediate")
        shutil.rmtree(home, ignore_errors=True)
        if project != PROJECT_DIR:
            shutil.rmtree(project, ignore_errors=True)


def create(conn: psycopg.Connection, name: str, per_second: float) -> int:
    body = {
        "name": name,
        "channel_id": 1,
        "template": {"name": TEMPLATE, "language": LANGUAGE},
        "per_second": per_second,
    }
    return conn.execute("SELECT whatsapp_handler.campaign_create(%s)", (Jsonb(body),)).fetchone()[0]


def one(conn: psycopg.Connection, query: str, params: tuple = ()) -> object:
    """The first column of the first row."""
    return conn.execute(query, params).fetchone()[0]


def set_setting(conn: psycopg.Connection, key: str, value: object) -> None:
    if not conn.execute("UPDATE whatsapp_handler.settings SET value = %s::jsonb WHERE key = %s",
                        (json.dumps(value), key)).rowcount:  # fmt: skip
        raise SystemExit(f"no setting {key} in this plan")


def upload(conn: psycopg.Connection, campaign: int, text: str, expected: dict) -> tuple[float, float, float]:
    """(seconds reading the CSV, seconds serialising the rows as JSON, seconds of the campaign_upload call)."""
    t0 = time.perf_counter()
    rows = recipients.from_csv(text)
    t1 = time.perf_counter()
    body = json.dumps(rows)
    t2 = time.perf_counter()
    answer = one(conn, "SELECT whatsapp_handler.campaign_upload(%s, %s::jsonb, true)", (campaign, body))
    t3 = time.perf_counter()
    got = {k: answer[k] for k in expected}
    if got != expected:
        raise SystemExit(f"campaign_upload answered {answer}, expected {expected}")
    return t1 - t0, t2 - t1, t3 - t2


def plan(conn: psycopg.Connection, worker: psycopg.Connection, campaign: int) -> tuple[float, int, int]:
    """Start, then worker_campaigns(60) until the campaign completes: (seconds, recipients settled, calls)."""
    t0 = time.perf_counter()
    conn.execute("SELECT whatsapp_handler.campaign_control(%s, 'start')", (campaign,))
    settled = calls = 0
    while True:
        done = worker.execute("SELECT whatsapp_handler.worker_campaigns(60)").fetchone()[0]
        settled += done
        calls += 1
        if (
            done < 60
            and one(conn, "SELECT state FROM whatsapp_handler.campaigns WHERE id = %s", (campaign,)) != "running"
        ):
            break
    return time.perf_counter() - t0, settled, calls


def funnel(conn: psycopg.Connection, campaign: int) -> dict:
    r = conn.execute("SELECT whatsapp_handler.campaign_results(%s)", (campaign,)).fetchone()[0]
    return {"state": r["state"], "states": r["states"], "reasons": r["reasons"]}


def reset(conn: psycopg.Connection) -> None:
    """The next round starts with an empty outbound queue and outbox, as the first did (the earlier
    campaigns stay, completed: their recipients are no longer pending)."""
    durable.empty_outbound(conn)
    conn.execute("VACUUM ANALYZE whatsapp_handler.campaign_recipients, whatsapp_handler.campaigns")


FUNCTIONS = """
SELECT schemaname || '.' || funcname AS name, calls, round(total_time::numeric, 1) AS total_ms,
       round(self_time::numeric, 1) AS self_ms, round((1000 * self_time / calls)::numeric, 1) AS self_us_per_call
FROM pg_stat_user_functions WHERE calls > 0 ORDER BY self_time DESC LIMIT %s
"""


def profile(pg: LocalCluster, text: str, expected: dict, rows: int) -> list[tuple]:
    """One more upload and planning pass as the superuser with track_functions = 'all': each function's
    calls and time of that pass (its own and with its callees), the most self time first."""
    with psycopg.connect(pg.url("bench"), autocommit=True) as conn:
        reset(conn)
        campaign = create(conn, "profiled", 1000)
        conn.execute("SELECT pg_stat_reset()")
        conn.execute("SET track_functions = 'all'")
        upload(conn, campaign, text, expected)
        seconds, settled, _ = plan(conn, conn, campaign)
        print(f"profiled pass: {settled:,} settled in {seconds:.1f} s ({settled / seconds:,.0f}/s)", flush=True)
    time.sleep(1.5)  # the backend's counters reach the shared statistics when it ends
    with psycopg.connect(pg.url("bench"), autocommit=True) as conn:
        return conn.execute(FUNCTIONS, (rows,)).fetchall()


def upload_bench(args: argparse.Namespace) -> None:
    text, expected = audience_csv(args.rows, args.duplicates, args.invalid)
    with cluster(args.revision, "wh-campaign-upload-") as (pg, _home):
        worker_url = add_login(pg, "bench_worker", "bench-worker-password", "whatsapp_handler_worker")
        with psycopg.connect(pg.url("bench"), autocommit=True) as conn, \
                psycopg.connect(worker_url, autocommit=True) as worker:  # fmt: skip
            conn.execute(
                "CREATE TABLE bench_baseline (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, doc jsonb NOT NULL)"
            )
            # Nothing but the loop's own speed holds planning: the campaign at its fastest, far ahead.
            set_channel_pace(conn, 100_000, 1_000)
            set_setting(conn, "campaigns.lookahead", "10 minutes")
            # send_messages100.pgbench's template and key: the send API's batch, the same rules, for reference.
            conn.execute("SELECT whatsapp_handler.template_upsert(1, 'bench_update', 'en', 'utility', 'approved',"
                         " '[{\"type\": \"BODY\", \"text\": \"Your order {{1}} has shipped\"}]')")  # fmt: skip
            conn.execute("INSERT INTO whatsapp_handler.api_keys (name, key_hash, channel_ids, scopes)"
                         " VALUES ('bench', sha256('bench-key'::bytea), '{1}', '{send}')")  # fmt: skip
            opted_out = conn.execute(
                "INSERT INTO whatsapp_handler.consents (user_id, channel_id, status, source) "
                "SELECT id, 1, 'opted_out', 'keyword:stop' FROM whatsapp_handler.users WHERE id % 100 = 7"
            ).rowcount
            print(f"{args.rows:,} rows: {expected}; {opted_out:,} known users opted out", flush=True)
            pgbench(pg, 5, "insert_jsonb.pgbench")  # warm-up
            inserts: list[float] = []
            singles: list[float] = []
            batches: list[float] = []
            rounds: list[dict] = []
            for round_ in range(1, args.rounds + 1):
                inserts.append(pgbench(pg, args.duration, "insert_jsonb.pgbench"))
                singles.append(pgbench(pg, args.duration, "insert_jsonb.pgbench", clients=1))
                batches.append(100 * pgbench(pg, args.duration, "send_messages100.pgbench", clients=1))
                print(f"round {round_}: insert {inserts[-1]:,.0f}/s, one client {singles[-1]:,.0f}/s; "
                      f"send_messages one client {batches[-1]:,.0f} messages/s", flush=True)  # fmt: skip
                campaign = create(conn, f"round {round_}", 1000)
                reading, serialising, call = upload(conn, campaign, text, expected)
                planning, settled, calls = plan(conn, worker, campaign)
                result = funnel(conn, campaign)
                if result["state"] != "completed" or settled != expected["accepted"]:
                    raise SystemExit(f"planning left {result} after settling {settled:,}")
                rounds.append({"insert_tps": inserts[-1], "csv_s": reading, "json_s": serialising,
                               "upload_call_s": call, "plan_s": planning, "settled": settled, "calls": calls,
                               "funnel": result})  # fmt: skip
                print(f"round {round_}: CSV {reading:.2f} s, JSON {serialising:.2f} s, "
                      f"campaign_upload {call:.2f} s; planning {planning:.1f} s for {settled:,} ({calls:,} calls); "
                      f"{json.dumps(result)}", flush=True)  # fmt: skip
                reset(conn)
            inserts.append(pgbench(pg, args.duration, "insert_jsonb.pgbench"))
            singles.append(pgbench(pg, args.duration, "insert_jsonb.pgbench", clients=1))
            print(f"closing: insert {inserts[-1]:,.0f}/s, one client {singles[-1]:,.0f}/s", flush=True)
        base, single = statistics.mean(inserts), statistics.mean(singles)
        print(f"\njsonb INSERT, 8 clients: {' / '.join(f'{v:,.0f}' for v in inserts)}, mean {base:,.0f}/s; "
              f"1 client: {' / '.join(f'{v:,.0f}' for v in singles)}, mean {single:,.0f}/s\n")  # fmt: skip
        print("| measure | per round | rows/s (mean) | ratio to the INSERT, 8 clients | to 1 client |")
        print("| --- | --- | --- | --- | --- |")
        mean = statistics.mean(batches)
        print(f"| send_messages, 100 a call, 1 client (reference) | {' / '.join(f'{v:,.0f}/s' for v in batches)} "
              f"| {mean:,.0f} | {mean / base:.2f} | {mean / single:.2f} |")  # fmt: skip
        measures = {
            "upload: CSV read + JSON + campaign_upload": ("rows", lambda r: r["csv_s"] + r["json_s"]
                                                          + r["upload_call_s"]),
            "upload: campaign_upload call alone": ("rows", lambda r: r["upload_call_s"]),
            "planning: start + worker_campaigns(60) loop": ("settled", lambda r: r["plan_s"]),
        }  # fmt: skip
        for name, (what, seconds) in measures.items():
            count = expected["rows"] if what == "rows" else expected["accepted"]
            rates = [count / seconds(r) for r in rounds]
            mean = statistics.mean(rates)
            print(f"| {name} | {' / '.join(f'{seconds(r):.1f} s' for r in rounds)} | {mean:,.0f} | {mean / base:.2f} "
                  f"| {mean / single:.2f} |")  # fmt: skip
        if args.functions:
            print("\n| function | calls | total ms | self ms | self µs/call |\n| --- | --- | --- | --- | --- |")
            for row in profile(pg, text, expected, 15):
                print("| " + " | ".join(f"{v:,}" if isinstance(v, int) else str(v) for v in row) + " |")


def metric(port: int, name: str) -> float | None:
    """One unlabelled sample of a worker's /metrics, None while it does not answer or lacks it."""
    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
    except httpx.TransportError:
        return None
    found = re.search(rf"^{name} ([0-9.e+]+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else None


def over_the_cap(times: list[float], cap: float) -> dict[str, int]:
    """{"+N": sends} of each clock second above cap, N counted from the first send's second."""
    first = int(times[0]) if times else 0
    clock: dict[int, int] = {}
    for t in times:
        clock[int(t) - first] = clock.get(int(t) - first, 0) + 1
    return {f"+{second}": n for second, n in sorted(clock.items()) if n > cap}


def start_worker(url: str, channel: dict, args: argparse.Namespace, log: Path, metrics_port: int) -> subprocess.Popen:
    """kit.services.start_worker's worker, with /metrics on metrics_port and, given --poll-interval, that
    interval instead of the kit's 0.05 s (the service's default is 0.5 s)."""
    if args.poll_interval is None:
        return services.start_worker(url, [channel], args.concurrency, log, worker_metrics_port=metrics_port)
    env = services.service_env(worker_database_url=url, channels=[channel], worker_concurrency=str(args.concurrency),
                               worker_batch=str(args.concurrency), worker_poll_interval=str(args.poll_interval),
                               worker_metrics_port=metrics_port, log_level="WARNING")  # fmt: skip
    return subprocess.Popen([str(services.BIN / "whatsapp-handler"), "worker"], env=env, stdout=log.open("ab"),
                            stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip


def dispatch_bench(args: argparse.Namespace) -> None:
    with cluster(args.revision, "wh-campaign-dispatch-") as (pg, home):
        worker_url = add_login(pg, "bench_worker", "bench-worker-password", "whatsapp_handler_worker")
        double, port = services.start_double(home / "double.log", control=True)
        procs, metric_ports = [double], []
        stalled_at = None
        try:
            with psycopg.connect(pg.url("bench"), autocommit=True) as conn:
                if args.channel_per_second:
                    set_channel_pace(conn, args.channel_per_second, args.channel_burst)
                channel_cap = one(conn, "SELECT value FROM whatsapp_handler.settings "
                                        "WHERE key = 'pacing.channel.per_second'")  # fmt: skip
                campaign = create(conn, "dispatch", args.per_second)
                rows = [{"phone": phone(n), "variables": [f"Passenger {n}", "IC 7"]} for n in range(args.recipients)]
                conn.execute("SELECT whatsapp_handler.campaign_upload(%s, %s)", (campaign, Jsonb(rows)))
                channel = services.sending_channel(PHONE_NUMBER_ID, "+15550001111", port)
                for n in range(args.workers):
                    metric_ports.append(services.free_port())
                    procs.append(start_worker(worker_url, channel, args, home / f"worker{n}.log", metric_ports[-1]))
                # The run starts with the campaign, every worker polling by then (its first read of the
                # campaigns done: the pool open, the dispatch and claim loops running).
                deadline = time.monotonic() + 120
                while any(metric(p, "whatsapp_campaign_metrics_up") != 1 for p in metric_ports):
                    if time.monotonic() > deadline:
                        raise SystemExit(f"the workers did not start; see {home}/worker*.log")
                    time.sleep(0.2)
                started = time.time()
                conn.execute("SELECT whatsapp_handler.campaign_control(%s, 'start')", (campaign,))
                deadline = started + args.recipients / args.per_second * 3 + 60 + args.stall
                while time.time() < deadline:
                    if args.stall and stalled_at is None and time.time() - started >= args.stall_at:
                        # Every worker away at once (a host paused, a rolling restart gone wrong): the
                        # messages queued ahead of the pace come due with nobody claiming them.
                        stalled_at = time.time()
                        for proc in procs[1:]:
                            os.killpg(proc.pid, signal.SIGSTOP)
                        time.sleep(args.stall)
                        for proc in procs[1:]:
                            os.killpg(proc.pid, signal.SIGCONT)
                    state = one(conn, "SELECT state FROM whatsapp_handler.campaigns WHERE id = %s", (campaign,))
                    left = one(conn, "SELECT count(*) FROM pgmq.q_outbound")
                    if state == "completed" and not left:
                        break
                    time.sleep(0.5)
                ended = time.time()
                result = funnel(conn, campaign)
                dead = one(conn, "SELECT count(*) FROM pgmq.q_outbound_dlq")
                # When each message was claimed (pgmq's last read, which the archive keeps), and when queued.
                archived = conn.execute(
                    "SELECT extract(epoch FROM last_read_at)::float8, extract(epoch FROM enqueued_at)::float8 "
                    "FROM pgmq.a_outbound WHERE message ->> 'campaign_id' = %s",
                    (str(campaign),)).fetchall()  # fmt: skip
            dispatched = [metric(p, "whatsapp_campaign_dispatched_total") for p in metric_ports]
            sent = deliveries(port)
        finally:
            for proc in procs:
                services.stop(proc)
        times = sorted(d["at"] for d in sent)
        claimed = sorted(r[0] for r in archived if r[0] is not None)
        queued = sorted(r[1] for r in archived)
        clock_max, window_max = most_in_a_second(times)
        claim_clock, claim_window = most_in_a_second(claimed)
        span = times[-1] - times[0] if len(times) > 1 else 0.0
        expected_span = (args.recipients - 1) / args.per_second
        report = {
            "recipients": args.recipients, "per_second": args.per_second, "channel_per_second": channel_cap,
            "workers": args.workers, "concurrency": args.concurrency, "poll_interval": args.poll_interval or 0.05,
            "funnel": result,
            "dispatched_by_each_worker": dispatched,
            "delivered": len(sent), "distinct_recipients": len({d["to"] for d in sent}),
            "delivered_twice": len(sent) - len({d["key"] for d in sent}), "dead_letters": dead,
            "most_in_a_clock_second": clock_max, "most_in_any_one_second_window": window_max,
            # The first slice's messages whose turn passed before its call committed come out together.
            "most_in_any_one_second_window_from_the_third_second": most_in_a_second(
                [t for t in times if t >= int(times[0]) + 2])[1] if times else 0,
            "clock_seconds_over_the_cap": over_the_cap(times, args.per_second),
            "claims_most_in_a_clock_second": claim_clock, "claims_most_in_any_one_second_window": claim_window,
            "first_queued_after_start_s": round(queued[0] - started, 2) if queued else None,
            "first_send_after_start_s": round(times[0] - started, 2) if times else None,
            "first_to_last_send_s": round(span, 2), "recipients_over_per_second_s": round(expected_span, 2),
            "span_ratio": round(span / expected_span, 3) if expected_span else None,
            "sustained_per_second": round((len(times) - 1) / span, 2) if span else None,
            "start_to_completed_and_empty_s": round(ended - started, 1),
        }  # fmt: skip
        if stalled_at is not None:
            report["workers_stopped_s"] = [round(stalled_at - started, 1), args.stall]
        print(json.dumps(report, indent=2))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--revision", help="deploy this git revision's plan instead of this checkout's")
    sub = parser.add_subparsers(dest="part", required=True)
    up = sub.add_parser("upload", help="upload and plan --rows recipients")
    up.add_argument("--rows", type=int, default=100_000)
    up.add_argument("--duplicates", type=float, default=0.02, help="share of rows repeating an earlier phone")
    up.add_argument("--invalid", type=float, default=0.01, help="share of rows not E.164 or missing a variable")
    up.add_argument("--rounds", type=int, default=2)
    up.add_argument("--duration", type=int, default=10, help="seconds of each pgbench INSERT measurement")
    up.add_argument("--functions", action="store_true", help="one more pass with track_functions = 'all'")
    disp = sub.add_parser("dispatch", help="two workers send a campaign against the double")
    disp.add_argument("--recipients", type=int, default=3000)
    disp.add_argument("--per-second", type=float, default=50, help="the campaign's cap")
    disp.add_argument("--workers", type=int, default=2)
    disp.add_argument("--concurrency", type=int, default=32, help="sends under way per worker")
    disp.add_argument("--channel-per-second", type=int, help="the channel's cap (default: the plan's, 80)")
    disp.add_argument("--channel-burst", type=int, default=5)
    disp.add_argument("--poll-interval", type=float, help="the workers' (default: the kit's 0.05 s)")
    disp.add_argument("--stall", type=float, default=0, help="SIGSTOP every worker for this many seconds, once")
    disp.add_argument("--stall-at", type=float, default=20, help="seconds after the start")
    args = parser.parse_args()
    upload_bench(args) if args.part == "upload" else dispatch_bench(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
