"""The benchmarks' database: a throwaway PostgreSQL that is durable (fsync and
synchronous_commit on, unlike the test cluster), with the plan deployed by sqitch into
database `bench`, the steady-state data most of them start from, and pgbench on it."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

from app import sqitch
from app.cluster import LocalCluster
from app.settings import PROJECT_DIR, Settings
from kit.services import free_port

# Their data and pgbench scripts: bench/ of this checkout (the kit is installed editable).
BENCH = PROJECT_DIR / "bench"
PHONE_NUMBER_ID = "1234567890"
# max_wal_size as a write-heavy primary would have it: at the default 1GB a sustained load
# forces a checkpoint every two minutes, and the full-page writes after each slow every commit.
DEFAULTS = {"max_connections": "200", "shared_buffers": "512MB", "max_wal_size": "4GB"}


def durable_cluster(home: Path, project: Path = PROJECT_DIR, **settings: str) -> LocalCluster:
    """The plan of project (this checkout, or revision_tree's copy of another) deployed."""
    pg = LocalCluster(home=home, port=free_port(), bindir=Settings().pg_bindir, settings=DEFAULTS | settings)
    pg.init()
    pg.configure(cron_database="bench")
    pg.start()
    pg.ensure_database("bench")
    sqitch.run("deploy", pg.url("bench"), capture=True, project=project)
    return pg


def revision_tree(revision: str, into: Path) -> Path:
    """The files of a git revision of this checkout, for comparing it in the same run."""
    archive = subprocess.run(["git", "archive", revision], cwd=PROJECT_DIR, capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return into


@contextmanager
def revision_setups(before: str, prefix: str, after: str | None = None,
                    **settings: str) -> Iterator[dict[str, tuple[LocalCluster, Path | None]]]:  # fmt: skip
    """{"before": (cluster, tree), "after": (cluster, tree)}: each a durable cluster, on a directory
    of its own, with the plan of its side deployed and the known users; tree is the git archive of
    the side's revision (None for "after" when no revision is given: this checkout), where a
    benchmark that runs the service's Python finds that side's app/. Removed after."""
    homes = [Path(tempfile.mkdtemp(prefix=prefix)) for _ in range(4)]
    setups: dict[str, tuple[LocalCluster, Path | None]] = {}
    try:
        trees = {"before": revision_tree(before, homes[0]),
                 "after": revision_tree(after, homes[1]) if after else None}  # fmt: skip
        for (name, tree), home in zip(trees.items(), homes[2:], strict=True):
            print(f"deploying {name} ({tree or PROJECT_DIR})", file=sys.stderr, flush=True)
            pg = durable_cluster(home, tree or PROJECT_DIR, **settings)
            setups[name] = (pg, tree)
            load_known_users(pg)
        yield setups
    finally:
        for pg, _ in setups.values():
            pg.stop("immediate")
        for home in homes:
            shutil.rmtree(home, ignore_errors=True)


@contextmanager
def revision_clusters(before: str, prefix: str, after: str | None = None,
                      **settings: str) -> Iterator[dict[str, LocalCluster]]:  # fmt: skip
    """{"before": a cluster with the plan of git revision `before`, "after": one with this
    checkout's (or revision `after`'s)}, each durable, on a directory of its own, with the known
    users; removed after."""
    with revision_setups(before, prefix, after, **settings) as setups:
        yield {name: pg for name, (pg, _) in setups.items()}


def alternating(rounds: int) -> Iterator[tuple[int, str]]:
    """(round, "before" or "after"), the order swapped every round, so that the machine's noise
    falls on both alike."""
    for round_ in range(rounds):
        for name in ("before", "after") if round_ % 2 == 0 else ("after", "before"):
            yield round_, name


def load_known_users(pg: LocalCluster) -> None:
    """A Meta channel and bench/known_users.sql's 100,000 users in active conversations on it."""
    with psycopg.connect(pg.url("bench"), autocommit=True) as conn:
        conn.execute("SELECT whatsapp_handler.add_channel('meta', %s, '+15550001111', 'Bench')", (PHONE_NUMBER_ID,))
        # One statement at a time: the file ends in a VACUUM, which no transaction may hold.
        for statement in (BENCH / "known_users.sql").read_text().split(";"):
            if any(verb in statement for verb in ("INSERT", "UPDATE", "VACUUM")):
                conn.execute(statement)


def add_login(pg: LocalCluster, login: str, password: str, group: str) -> str:
    """A login granted one of the project's group roles; returns its URL."""
    with psycopg.connect(pg.url("bench"), autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {login} LOGIN PASSWORD '{password}' IN ROLE {group}")
    return pg.url("bench", user=login, password=password)


def start_database(home: Path, prefix: str) -> tuple[LocalCluster, str, str]:
    """A durable cluster with the known users on the bench channel, and the URLs of a relay
    login and a worker login named after prefix."""
    pg = durable_cluster(home)
    load_known_users(pg)
    relay_url = add_login(pg, f"{prefix}_relay", f"{prefix}-relay-password", "whatsapp_handler_relay")
    worker_url = add_login(pg, f"{prefix}_worker", f"{prefix}-worker-password", "whatsapp_handler_worker")
    return pg, relay_url, worker_url


def pgbench(pg: LocalCluster, duration: int, script: str = "ingest_meta.pgbench", clients: int = 8) -> float:
    """Transactions per second of one of bench/'s pgbench scripts against the bench database."""
    out = subprocess.run(
        ["pgbench", "-h", "127.0.0.1", "-p", str(pg.port), "-U", "postgres", "-n", "-c", str(clients), "-j", "2",
         "-T", str(duration), "-f", str(BENCH / script), "bench"],
        env={**os.environ, "PGPASSWORD": pg.password()}, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return float(re.search(r"tps = ([\d.]+)", out).group(1))


# Text replies queued as the conversation would have queued them, each with its outbound row:
# message i to the (i mod n)-th conversation (ordered by id), so that up to one per user no
# claim waits behind a user's earlier message, and beyond that each user's line grows in turns.
_FILL = """
WITH c AS (
    SELECT id, user_id, channel_id, row_number() OVER (ORDER BY id) - 1 AS k
    FROM whatsapp_handler.conversations
), g AS (
    SELECT c.id, c.user_id, c.channel_id, nextval('whatsapp_handler.messages_id_seq') AS mid
    FROM generate_series(0, %(n)s - 1) i JOIN c ON c.k = i %% (SELECT count(*) FROM c) ORDER BY i
), m AS (
    INSERT INTO whatsapp_handler.messages (id, created_at, channel_id, user_id, conversation_id, direction,
                                           message_type, body, status)
    OVERRIDING SYSTEM VALUE
    SELECT mid, now(), channel_id, user_id, id, 'outbound', 'text', 'Your order has shipped.', 'queued' FROM g
    RETURNING id, created_at, channel_id, user_id
)
INSERT INTO pgmq.q_outbound (vt, message, headers)
SELECT clock_timestamp(),
       jsonb_build_object('kind', 'text', 'message_id', m.id, 'message_created_at', m.created_at,
                          'channel_id', m.channel_id, 'user_id', m.user_id, 'to', u.phone,
                          'body', 'Your order has shipped.', 'reply_key', 'bench'),
       jsonb_build_object('x-pgmq-group', 'user:' || m.user_id)
FROM m JOIN whatsapp_handler.users u ON u.id = m.user_id ORDER BY m.id
"""


def fill_outbound(conn: psycopg.Connection, messages: int) -> None:
    """Queues `messages` replies over the known users (load_known_users) in turns: one to each of the
    first `messages` users while there are enough, then a second to each, and so on."""
    conn.execute(_FILL, {"n": messages})
    conn.execute("VACUUM ANALYZE pgmq.q_outbound")


def set_channel_pace(conn: psycopg.Connection, per_second: int, burst: int) -> bool:
    """Sets every channel's pacing cap (settings pacing.channel.per_second and pacing.channel.burst,
    delivery/pacing) in one statement; False when the plan has none (a revision before pacing)."""
    changed = conn.execute(
        "UPDATE whatsapp_handler.settings SET value = to_jsonb(CASE key WHEN 'pacing.channel.per_second' THEN %s "
        "ELSE %s END) WHERE key IN ('pacing.channel.per_second', 'pacing.channel.burst')",
        (per_second, burst),
    ).rowcount
    return changed == 2


def empty_outbound(conn: psycopg.Connection) -> None:
    """Back to where fill_outbound starts, for benchmarks that fill the queue again on one cluster:
    no outbound message, queued, archived or announced, and no (channel, person) pacing bucket
    (a plan with pacing), so that every round writes to people the channel has not written to lately."""
    conn.execute("TRUNCATE pgmq.q_outbound, pgmq.a_outbound, pgmq.q_outbox, pgmq.a_outbox, "
                 "whatsapp_handler.message_keys")  # fmt: skip
    if conn.execute("SELECT to_regclass('whatsapp_handler.pacing_pairs') IS NOT NULL").fetchone()[0]:
        conn.execute("TRUNCATE whatsapp_handler.pacing_pairs")
    conn.execute("DELETE FROM whatsapp_handler.messages WHERE direction = 'outbound'")
    conn.execute("VACUUM ANALYZE whatsapp_handler.messages")
