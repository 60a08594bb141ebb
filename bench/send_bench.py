"""Send benchmark (issue 14): business messages accepted per second through send_message (one per
transaction), through send_messages (100 per call) and through POST /v1/messages on the relay, each
as a ratio to the machine's single-row jsonb INSERT under pgbench in the same run, on a durable
PostgreSQL with 100,000 known users. Run by hand; results go to bench/RESULTS.md.

    .venv/bin/python bench/send_bench.py [--duration 15] [--rounds 2]

Needs pgbench (Debian package postgresql-client-15).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp
import psycopg
import uvloop

from kit import services
from kit.durable import PHONE_NUMBER_ID, add_login, durable_cluster, load_known_users, pgbench
from kit.services import SECRET

KEY = "bench-key"
TEMPLATE = {"name": "bench_update", "language": {"code": "en"},
            "components": [{"type": "body", "parameters": [{"type": "text", "text": "42"}]}]}  # fmt: skip


def prepare(conn: psycopg.Connection) -> None:
    """The baseline's table, an approved template, and a key whose hash the pgbench scripts know."""
    conn.execute("CREATE TABLE bench_baseline (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, doc jsonb NOT NULL)")
    conn.execute("SELECT whatsapp_handler.template_upsert(1, 'bench_update', 'en', 'utility', 'approved',"
                 " '[{\"type\": \"BODY\", \"text\": \"Your order {{1}} has shipped\"}]')")  # fmt: skip
    conn.execute("INSERT INTO whatsapp_handler.api_keys (name, key_hash, channel_ids, scopes)"
                 " VALUES ('bench', sha256(%s::bytea), '{1}', '{send,read}')", (KEY.encode(),))  # fmt: skip


async def post_for(port: int, duration: float, connections: int) -> tuple[float, int]:
    """Closed loop: each connection posts the next message as soon as the last one is answered."""
    accepted = refused = 0
    deadline = time.monotonic() + duration
    headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}

    async def one_connection(session: aiohttp.ClientSession, n: int) -> None:
        nonlocal accepted, refused
        while time.monotonic() < deadline:
            n += connections
            body = {"channel_id": 1, "to": f"+{447700000000 + n % 100000}", "type": "template", "template": TEMPLATE}
            async with session.post(f"http://127.0.0.1:{port}/v1/messages", data=json.dumps(body),
                                    headers={**headers, "Idempotency-Key": uuid.uuid4().hex}) as answer:  # fmt: skip
                await answer.read()
                if answer.status == 202:
                    accepted += 1
                else:
                    refused += 1

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=connections)) as session:
        started = time.monotonic()
        await asyncio.gather(*(one_connection(session, i) for i in range(connections)))
        return accepted / (time.monotonic() - started), refused


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=15, help="seconds per measurement")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of the four measurements, alternating")
    parser.add_argument("--connections", type=int, default=32, help="concurrent HTTP connections")
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="wh-send-bench-"))
    pg = durable_cluster(home)
    relay = None
    try:
        load_known_users(pg)
        with psycopg.connect(pg.url("bench"), autocommit=True) as conn:
            prepare(conn)
        relay_url = add_login(pg, "bench_relay", "bench-relay-password", "whatsapp_handler_relay")
        channel = {
            "provider": "meta",
            "ref": PHONE_NUMBER_ID,
            "phone": "+15550001111",
            "name": "Bench",
            "secret": SECRET,
        }
        log = home.parent / f"{home.name}-relay.log"
        relay, port = services.start_relay(relay_url, [channel], log, 1, pool_max_size="16")
        pgbench(pg, 5, "send_message.pgbench")  # warm-up: plans, caches, the first partitions' pages
        results: dict[str, list[float]] = {"insert": [], "send_message": [], "send_messages": [], "http": []}
        for round_ in range(1, args.rounds + 1):
            results["insert"].append(pgbench(pg, args.duration, "insert_jsonb.pgbench"))
            results["send_message"].append(pgbench(pg, args.duration, "send_message.pgbench"))
            results["send_messages"].append(100 * pgbench(pg, args.duration, "send_messages100.pgbench", clients=4))
            rate, refused = uvloop.run(post_for(port, args.duration, args.connections))
            assert refused == 0, f"{refused} sends refused"
            results["http"].append(rate)
            print(f"round {round_}: " + ", ".join(f"{k} {v[-1]:,.0f}/s" for k, v in results.items()), flush=True)
        base = sum(results["insert"]) / len(results["insert"])
        print("\n| path | messages/s (rounds) | ratio to the jsonb INSERT |")
        print("| --- | --- | --- |")
        for name, values in results.items():
            mean = sum(values) / len(values)
            print(f"| {name} | {' / '.join(f'{v:,.0f}' for v in values)} | {mean / base:.2f} |")
    finally:
        if relay is not None:
            services.stop(relay)
        pg.stop()
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
