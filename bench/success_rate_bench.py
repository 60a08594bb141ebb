"""What the webhooks' success rate costs (issue 16): a day of webhooks in webhook_events, then
the live count a scrape would make without the minute counts, the job's first run (it counts two
days back to the start of the day 25 hours ago), its run once it is in step (a minute's webhooks
counted twice, the failures with their dead letters waiting not looked at again), the same after
a re-drive of a tenth of an hour's failures, and webhook_success_rate() as /metrics calls it.
Ingestion is not measured: the change adds nothing to it (no index, no trigger on webhook_events;
its verify checks there is no trigger). Run by hand; results go to bench/RESULTS.md.

    .venv/bin/python bench/success_rate_bench.py [--rows 2000000] [--channels 12] [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import psycopg

from kit.durable import durable_cluster

PROVIDERS = ("meta", "twilio", "evolution")
# A Meta text message's body as stored (about 600 bytes), so that the heap is a real one.
BODY = (
    '{"object":"whatsapp_business_account","entry":[{"id":"102290129340398","changes":[{"field":"messages",'
    '"value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550001111",'
    '"phone_number_id":"1234567890"},"contacts":[{"profile":{"name":"Ana"},"wa_id":"447700000001"}],'
    '"messages":[{"from":"447700000001","id":"wamid.HBgLNDQ3NzAwMDAwMDAxFQIAEhggQjA0","timestamp":"1700000000",'
    '"type":"text","text":{"body":"hello, is my order on its way? it was due yesterday"}}]}}]}]}'
)
LIVE = """SELECT provider, channel_id,
    count(*) FILTER (WHERE received_at >= now() - interval '1 hour') AS hour,
    count(*) FILTER (WHERE received_at >= now() - interval '1 hour' AND outcome = 'failed') AS hour_failed,
    count(*) AS day, count(*) FILTER (WHERE outcome = 'failed') AS day_failed
FROM whatsapp_handler.webhook_events WHERE received_at >= now() - interval '24 hours' GROUP BY 1, 2"""


def timed(conn: psycopg.Connection, sql: str, repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        conn.execute(sql).fetchall()
        times.append(round((time.perf_counter() - started) * 1000, 1))
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000, help="webhooks over the last 24 hours")
    parser.add_argument("--channels", type=int, default=12)
    parser.add_argument("--failed", type=float, default=0.01, help="share of them failed, spread evenly")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="wh-bench-"))
    pg = durable_cluster(home)
    result: dict[str, object] = {"rows": args.rows, "channels": args.channels, "failed_share": args.failed}
    try:
        conn = psycopg.connect(pg.url("bench"), autocommit=True)
        # The bench runs the job itself; pg_cron's run every minute would wait on the same lock.
        conn.execute("UPDATE whatsapp_handler.jobs SET enabled = false WHERE name = 'webhook_minutes'")
        for i in range(args.channels):
            provider = PROVIDERS[i % 3]
            ref = f"AC{i:04d}" if provider == "twilio" else f"ref{i}"
            conn.execute(
                "SELECT whatsapp_handler.add_channel(%s, %s, %s, %s)", (provider, ref, f"+1555000{i:04d}", f"c{i}")
            )
        every = round(1 / args.failed)
        started = time.perf_counter()
        # In order of time, so that ids follow received_at as ingestion numbers them.
        conn.execute(
            """INSERT INTO whatsapp_handler.webhook_events (received_at, provider, channel_id, payload, outcome, error)
            SELECT now() - interval '24 hours' + (i * 86400.0 / %(rows)s) * interval '1 second',
                   c.provider, c.id, %(body)s::jsonb,
                   CASE WHEN i %% %(every)s = 0 THEN 'failed' ELSE 'processed' END,
                   CASE WHEN i %% %(every)s = 0 THEN 'WH000: planted' END
            FROM generate_series(1, %(rows)s) i
            JOIN (SELECT id, provider, row_number() OVER (ORDER BY id) - 1 AS n FROM whatsapp_handler.channels) c
              ON c.n = i %% %(channels)s
            ORDER BY i""",
            {"rows": args.rows, "body": BODY, "every": every, "channels": args.channels},
        )
        # Each failure has its dead letter waiting, as ingestion leaves it.
        conn.execute(
            "SELECT whatsapp_handler._dead_letter_inbound(jsonb_build_object('webhook_event_id', id, "
            "'received_at', received_at, 'provider', provider)) FROM whatsapp_handler.webhook_events "
            "WHERE outcome = 'failed'"
        )
        conn.execute("VACUUM ANALYZE whatsapp_handler.webhook_events")
        conn.execute("CHECKPOINT")
        result["load_seconds"] = round(time.perf_counter() - started, 1)
        result["heap_mib"] = round(conn.execute(
            "SELECT sum(pg_relation_size(relid)) FROM pg_partition_tree('whatsapp_handler.webhook_events')"
        ).fetchone()[0] / 2**20)  # fmt: skip

        result["live_query_ms"] = timed(conn, LIVE, args.repeat)
        job = "SELECT whatsapp_handler.job_webhook_minutes()"
        # pg_cron may have run the job once between the deploy and the UPDATE above: a first run as after a deploy.
        conn.execute("TRUNCATE whatsapp_handler.webhook_minutes, whatsapp_handler.webhook_minute_marks")
        result["first_run_ms"] = timed(conn, job, 1)
        # In step: the mark the third run on would find (taken a minute before the minute it counts again).
        conn.execute(
            """INSERT INTO whatsapp_handler.webhook_minute_marks (at, last_id, counted_to)
            SELECT date_trunc('minute', now()) - interval '61 seconds',
                   (SELECT max(id) FROM whatsapp_handler.webhook_events
                    WHERE received_at < date_trunc('minute', now()) - interval '61 seconds'),
                   date_trunc('minute', now())"""
        )
        result["in_step_run_ms"] = timed(conn, job, args.repeat)
        # A re-drive of a tenth of an hour's failures, three hours back: their letters go.
        conn.execute(
            """WITH redriven AS (
                UPDATE whatsapp_handler.webhook_events SET outcome = 'processed', error = NULL
                WHERE outcome = 'failed' AND received_at >= now() - interval '3 hours'
                  AND received_at < now() - interval '3 hours' + interval '6 minutes' RETURNING id)
            DELETE FROM pgmq.q_inbound_dlq q USING redriven r WHERE (q.message ->> 'webhook_event_id')::bigint = r.id"""
        )
        result["after_redrive_run_ms"] = timed(conn, job, 1)
        result["in_step_again_ms"] = timed(conn, job, args.repeat)
        scrape = "SELECT * FROM whatsapp_handler.webhook_success_rate()"
        result["scrape_ms"] = timed(conn, scrape, args.repeat)
        result["scrape_rows"] = len(conn.execute(scrape).fetchall())
        result["minute_rows"] = conn.execute("SELECT count(*) FROM whatsapp_handler.webhook_minutes").fetchone()[0]
        print(json.dumps(result, indent=2))
    finally:
        pg.stop("immediate")
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
